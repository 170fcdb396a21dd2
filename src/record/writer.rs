//! Writes session records to disk off the request path: one thread drains a bounded
//! queue, fits each record in `sessions.max_file_bytes`, redacts secrets, writes it
//! atomically (`disk`), and keeps the folder rotated.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use super::disk::{self, DiskHealth};
use super::fit;
use super::log::SessionRecord;
use super::rotation::{Rotation, file_name};
use super::segment::Appender;
use super::sink::{Observer, SessionSink, WriterMsg};
use crate::config::{SessionFormat, SessionsConfig};
use crate::secret::Secret;

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
/// count every request and every file written. `queue` places hold records not yet
/// written: each request answered takes one (see `Session::reserve_slot`), so a slow
/// disk slows new requests down instead of filling memory.
///
/// A folder that cannot be written (full disk, wrong owner) does not stop the router:
/// it is logged, shown in `/health/ready` (`SessionSink::disk_problem`), and every
/// record tries again.
pub fn start(
    config: &SessionsConfig,
    queue: usize,
    secrets: Vec<Secret>,
    observers: Vec<Arc<dyn Observer>>,
) -> std::io::Result<(SessionSink, SessionWriter)> {
    let dir = config.dir.clone();
    let health = Arc::new(DiskHealth::default());
    let probe = disk::check_writable(&dir);
    if let Err(e) = &probe {
        tracing::error!(error = %e, "session logs cannot be written now; the router serves and keeps trying");
    }
    health.set(probe.as_ref().map(|_| ()));
    let rotation = Rotation::start(&dir, config.max_files, config.max_age_days);
    let (queue, receiver) = mpsc::channel(queue.max(1));
    let disk = Disk {
        segments: (config.format == SessionFormat::Segments)
            .then(|| Appender::new(&dir, config.fsync)),
        dir,
        fsync: config.fsync,
        max_file_bytes: config.max_file_bytes,
        secrets: secrets
            .into_iter()
            .filter(|s| s.expose().len() >= 8)
            .collect(),
        health: health.clone(),
    };
    let sink = SessionSink::new(queue.clone())
        .observed_by(observers.clone())
        .with_disk(health);
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
    /// With `sessions.format = "segments"`: the day's segment, kept open.
    segments: Option<Appender>,
    dir: PathBuf,
    fsync: bool,
    max_file_bytes: usize,
    secrets: Vec<Secret>,
    health: Arc<DiskHealth>,
}

fn run(
    mut receiver: mpsc::Receiver<WriterMsg>,
    mut disk: Disk,
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
    /// Writes one record atomically (a file of its own, or a whole line of the day's
    /// segment) and returns the file's name.
    fn write(&mut self, mut record: SessionRecord) -> std::io::Result<String> {
        let name = file_name(record.started_at, &record.id);
        summarise_data_urls(&mut record.client_messages);
        for step in &mut record.steps {
            summarise_data_urls(&mut step.messages_sent);
        }
        let started_at = record.started_at;
        let result = match &mut self.segments {
            Some(segments) => {
                let mut line = fit::to_json_line(&mut record, self.max_file_bytes, &self.secrets)
                    .map_err(std::io::Error::other)?;
                drop(record);
                crate::secret::redact_all(&mut line, &self.secrets);
                segments.append(started_at, line.as_bytes())
            }
            None => {
                let mut text = fit::to_json(&mut record, self.max_file_bytes, &self.secrets)
                    .map_err(std::io::Error::other)?;
                drop(record);
                crate::secret::redact_all(&mut text, &self.secrets);
                text.push('\n');
                disk::write_file(&self.dir, &name, text.as_bytes(), self.fsync).map(|()| name)
            }
        }
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.dir.display())));
        self.health.set(result.as_ref().map(|_| ()));
        result
    }
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
    use std::path::Path;

    fn config(dir: &Path) -> SessionsConfig {
        SessionsConfig {
            dir: dir.to_path_buf(),
            ..SessionsConfig::default()
        }
    }

    const QUEUE: usize = 64;

    #[tokio::test]
    async fn writes_one_complete_file_per_record_with_secrets_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let secret = Secret::new("xai-SECRET-0123456789");
        let (sink, writer) = start(&config(dir.path()), QUEUE, vec![secret], Vec::new()).unwrap();
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

    #[tokio::test]
    async fn an_unwritable_folder_is_reported_and_retried_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, "x").unwrap();
        let folder = blocker.join("sessions");
        let (sink, writer) = start(&config(&folder), QUEUE, vec![], Vec::new()).unwrap();
        let problem = sink.disk_problem().expect("the problem is reported");
        assert!(problem.contains("not writable"), "{problem}");
        // The admin fixes it: the next record is written and the problem clears.
        std::fs::remove_file(&blocker).unwrap();
        let session = Session::start(
            SessionStart {
                backends_down: Vec::new(),
                id: "0badf00d".into(),
                client_ip: "10.0.0.1".into(),
                user_agent: None,
            },
            sink.clone(),
        );
        session.finish(Outcome::Ok, 200, None);
        writer.flush().await;
        assert_eq!(sink.disk_problem(), None);
        assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1);
        writer.shutdown().await;
    }
}
