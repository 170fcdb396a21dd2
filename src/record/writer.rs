//! Writes session records to disk off the request path: one thread drains a bounded
//! queue, writes each record to a temp file and renames it into place (a reader never
//! sees half a file), redacts secrets, and keeps the folder rotated.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use super::log::SessionRecord;
use super::rotation::{Rotation, file_name};
use super::sink::{Observer, SessionSink, WriterMsg};
use crate::config::SessionsConfig;
use crate::secret::Secret;

/// Places in the writer's queue. Every chat reserves one when it starts (see
/// `Session::reserve_slot`), so this bounds the records held in memory; it is well
/// above the default `server.max_concurrent_requests`.
const QUEUE_CAPACITY: usize = 2048;
/// How often old files are swept even when no request arrives.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// `data:` URLs (base64 images, audio) longer than this are summarised, not logged.
const MAX_DATA_URL: usize = 1024;

/// The running writer; `flush` at shutdown so nothing queued is lost.
#[derive(Debug)]
pub struct SessionWriter {
    queue: mpsc::Sender<WriterMsg>,
    sweeper: tokio::task::JoinHandle<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Creates the folder, checks it is writable, sweeps it, and starts the writer.
/// `secrets` are replaced by `***` wherever they would appear in a file; `observers`
/// count every request and every file written.
pub fn start(
    config: &SessionsConfig,
    secrets: Vec<Secret>,
    observers: Vec<Arc<dyn Observer>>,
) -> std::io::Result<(SessionSink, SessionWriter)> {
    let dir = config.dir.clone();
    std::fs::create_dir_all(&dir)?;
    check_writable(&dir)?;
    let rotation = Rotation::start(&dir, config.max_files, config.max_age_days);
    let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
    let disk = Disk {
        dir,
        fsync: config.fsync,
        secrets: secrets
            .into_iter()
            .filter(|s| s.expose().len() >= 8)
            .collect(),
    };
    let sink = SessionSink::new(queue.clone()).observed_by(observers.clone());
    let thread = std::thread::Builder::new()
        .name("session-writer".into())
        .spawn(move || run(receiver, disk, rotation, &observers))?;
    let ticker = queue.clone();
    let sweeper = tokio::spawn(async move {
        let mut interval = tokio::time::interval(SWEEP_EVERY);
        interval.tick().await;
        loop {
            interval.tick().await;
            if ticker.send(WriterMsg::Sweep).await.is_err() {
                break;
            }
        }
    });
    let writer = SessionWriter {
        queue: queue.clone(),
        sweeper,
        thread: Some(thread),
    };
    Ok((sink, writer))
}

impl SessionWriter {
    /// Waits until every record queued so far is on disk.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(WriterMsg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Flushes, then stops the periodic sweep. Records sent later still get written
    /// as long as the process runs.
    pub async fn shutdown(mut self) {
        self.flush().await;
        self.sweeper.abort();
        // The thread ends when the last sink is dropped; it is not joined here because
        // the state that holds a sink may outlive this call.
        drop(self.thread.take());
    }
}

struct Disk {
    dir: PathBuf,
    fsync: bool,
    secrets: Vec<Secret>,
}

fn run(
    mut receiver: mpsc::Receiver<WriterMsg>,
    disk: Disk,
    mut rotation: Rotation,
    observers: &[Arc<dyn Observer>],
) {
    let written = |ok| observers.iter().for_each(|o| o.written(ok));
    while let Some(message) = receiver.blocking_recv() {
        match message {
            WriterMsg::Record(record) => match disk.write(*record) {
                Ok(name) => {
                    written(true);
                    rotation.added(name);
                }
                Err(e) => {
                    written(false);
                    tracing::error!(error = %e, "could not write session log");
                }
            },
            WriterMsg::Sweep => rotation.sweep(),
            WriterMsg::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl Disk {
    /// Writes one record atomically and returns its file name.
    fn write(&self, mut record: SessionRecord) -> std::io::Result<String> {
        let name = file_name(record.started_at, &record.id);
        summarise_data_urls(&mut record.client_messages);
        for step in &mut record.steps {
            summarise_data_urls(&mut step.messages_sent);
        }
        let mut text = serde_json::to_string_pretty(&record).map_err(std::io::Error::other)?;
        for secret in &self.secrets {
            if text.contains(secret.expose()) {
                text = text.replace(secret.expose(), "***");
            }
        }
        text.push('\n');
        let temp = self.dir.join(format!(".{name}.tmp"));
        let result = self.write_temp(&temp, text.as_bytes());
        let result = result.and_then(|()| std::fs::rename(&temp, self.dir.join(&name)));
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map(|()| name)
    }

    fn write_temp(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut file = std::fs::File::create(path)?;
        file.write_all(bytes)?;
        if self.fsync {
            file.sync_all()?;
        }
        Ok(())
    }
}

/// Proves `dir` accepts new files by writing and removing one.
pub fn check_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".write-check-{}.json.tmp", std::process::id()));
    std::fs::write(&probe, b"{}")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("{} is not writable: {e}", dir.display()))
        })
}

/// Replaces long `data:` URLs (base64 images) with a short note: a chat with a few
/// photos would otherwise write megabytes per session file.
fn summarise_data_urls(value: &mut Value) {
    match value {
        Value::String(text) if text.len() > MAX_DATA_URL && text.starts_with("data:") => {
            let kind = text.split([';', ',']).next().unwrap_or("data:");
            *text = format!("[{kind} URL of {} bytes, not logged]", text.len());
        }
        Value::Array(items) => items.iter_mut().for_each(summarise_data_urls),
        Value::Object(fields) => fields.values_mut().for_each(summarise_data_urls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::log::Outcome;
    use crate::record::session::{Session, SessionStart};

    fn config(dir: &Path) -> SessionsConfig {
        SessionsConfig {
            dir: dir.to_path_buf(),
            ..SessionsConfig::default()
        }
    }

    #[tokio::test]
    async fn writes_one_complete_file_per_record_with_secrets_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let secret = Secret::new("xai-SECRET-0123456789");
        let (sink, writer) = start(&config(dir.path()), vec![secret], Vec::new()).unwrap();
        let mut session = Session::start(
            SessionStart {
                backends_down: Vec::new(),
                id: "0badf00d".into(),
                client_ip: "10.0.0.1".into(),
                user_agent: Some("test".into()),
            },
            sink,
        );
        let image = format!("data:image/png;base64,{}", "A".repeat(5000));
        let messages = vec![serde_json::json!({"role":"user","content":[
            {"type":"text","text":"key is xai-SECRET-0123456789"},
            {"type":"image_url","image_url":{"url": image}}
        ]})];
        session.set_request(&messages, "key is xai-SECRET-0123456789", false);
        session.finish(Outcome::Ok, 200, None);
        writer.flush().await;
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "exactly one file, no temp left behind");
        let name = files[0].file_name().to_string_lossy().into_owned();
        assert!(name.ends_with("_0badf00d.json"), "{name}");
        let text = std::fs::read_to_string(files[0].path()).unwrap();
        assert!(!text.contains("SECRET"), "secret leaked: {text}");
        assert!(text.contains("[data:image/png URL of 5022 bytes, not logged]"));
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["id"], "0badf00d");
        assert_eq!(json["schema_version"], 1);
        writer.shutdown().await;
    }

    #[test]
    fn an_unwritable_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let result =
            runtime.block_on(async { start(&config(&file.join("sessions")), vec![], Vec::new()) });
        assert!(result.is_err());
    }
}
