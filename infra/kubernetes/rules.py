#!/usr/bin/env python3
"""The deployment rules of ai-router's Kubernetes manifests, checked on rendered output.

    rules.py RENDERED.yaml...          check each rendered overlay (`kubectl kustomize DIR`)
    rules.py --no-router RENDERED.yaml...
                                       the same for a render without the router (a helper)
    rules.py --self-test RENDERED.yaml FIXTURE.yaml
                                       prove the rules catch what they claim: FIXTURE (a
                                       deliberately broken manifest) must fail with the rules
                                       its `# expect:` line names, and each mutation of the
                                       good RENDERED output must fail with its own rule

Rules (the id in brackets is what a failure prints):
  [probes]     every long-running container has a liveness and a readiness probe
  [resources]  every container and init container requests and limits cpu and memory
  [security]   non-root, read-only root filesystem, no privilege escalation, all capabilities
               dropped, seccomp RuntimeDefault, nothing privileged or on the host's namespaces
  [secrets]    an env variable named like a secret (KEY, TOKEN, SECRET, PASSWORD) comes from
               valueFrom (names ending _ENV or _FILE name a variable or a file, not a secret);
               no value or ConfigMap looks like a credential; no Secret object is shipped
  [images]     every image has a pinned tag or digest, never `latest`
  [grace]      the router's terminationGracePeriodSeconds >= server.shutdown_grace_secs (from
               the rendered router.toml, or its environment override) + its preStop sleep +
               5 s to flush session logs and exit
  [scaling]    the router has a PodDisruptionBudget and a HorizontalPodAutoscaler that match
               it, at least 2 replicas, a PDB that lets one go, and no `replicas` of its own
  [sessions]   each router pod writes its own session folder (sessions dir with $(POD_NAME),
               defined before it so Kubernetes expands it) on a writable volume
  [refs]       ConfigMaps, their keys, PVCs and Service selectors point at something rendered;
               every prompt file router.toml names is mounted

Needs PyYAML (the check venv has it, through kubernetes-validate); tomllib is stdlib.
"""

from __future__ import annotations

import copy
import re
import sys
import tomllib
from pathlib import PurePosixPath

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"}
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
NAMES_A_THING = re.compile(r"_(ENV|FILE)$", re.IGNORECASE)
CREDENTIAL = re.compile(
    r"\b(xai-[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----)"
)
ROUTER = "ai-router"
FLUSH_MARGIN_SECS = 5
MIN_ROUTER_REPLICAS = 2


def load(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def name_of(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def pod_template(obj: dict) -> dict | None:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return obj
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    if kind in WORKLOADS:
        return spec.get("template")
    return None


def containers(pod_spec: dict) -> list[tuple[str, dict]]:
    found = [("container", c) for c in pod_spec.get("containers") or []]
    found += [("init container", c) for c in pod_spec.get("initContainers") or []]
    return found


def is_router(obj: dict) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return obj.get("kind") == "Deployment" and labels.get("app.kubernetes.io/name") == ROUTER


def check(docs: list[dict], want_router: bool = True) -> list[tuple[str, str]]:
    """Every broken rule as (rule id, message)."""
    problems: list[tuple[str, str]] = []

    def fail(rule: str, message: str) -> None:
        problems.append((rule, message))

    configmaps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    pvcs = {d["metadata"]["name"] for d in docs if d.get("kind") == "PersistentVolumeClaim"}
    templates = [(d, pod_template(d)) for d in docs if pod_template(d)]

    for doc in docs:
        if doc.get("kind") == "Secret":
            fail("secrets", f"{name_of(doc)}: a Secret is shipped in the manifests; the admin creates it")
        if doc.get("kind") == "ConfigMap":
            for key, value in (doc.get("data") or {}).items():
                if CREDENTIAL.search(str(value)):
                    fail("secrets", f"{name_of(doc)}: key {key} holds something that looks like a credential")

    for obj, template in templates:
        where = name_of(obj)
        spec = template.get("spec") or {}
        pod_sc = spec.get("securityContext") or {}
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(flag):
                fail("security", f"{where}: {flag} is set")
        for role, container in containers(spec):
            cname = f"{where} {role} {container.get('name')}"
            # Probes: serving containers only (a Job runs to completion, an init container
            # cannot have them).
            if role == "container" and obj["kind"] in LONG_RUNNING:
                for probe in ("livenessProbe", "readinessProbe"):
                    if not container.get(probe):
                        fail("probes", f"{cname}: no {probe}")
            resources = container.get("resources") or {}
            for level in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if not (resources.get(level) or {}).get(resource):
                        fail("resources", f"{cname}: no {level}.{resource}")
            sc = container.get("securityContext") or {}

            def effective(key: str, sc: dict = sc) -> object:
                return sc[key] if key in sc else pod_sc.get(key)

            if effective("runAsNonRoot") is not True:
                fail("security", f"{cname}: runAsNonRoot is not true")
            if effective("runAsUser") == 0:
                fail("security", f"{cname}: runAsUser is 0")
            if sc.get("readOnlyRootFilesystem") is not True:
                fail("security", f"{cname}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail("security", f"{cname}: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                fail("security", f"{cname}: privileged")
            drop = [str(c).upper() for c in (sc.get("capabilities") or {}).get("drop") or []]
            if "ALL" not in drop:
                fail("security", f"{cname}: capabilities do not drop ALL")
            if (sc.get("capabilities") or {}).get("add"):
                fail("security", f"{cname}: adds capabilities")
            seccomp = (effective("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                fail("security", f"{cname}: seccompProfile is not RuntimeDefault")
            image = str(container.get("image") or "")
            last = image.rsplit("/", 1)[-1]
            if not image:
                fail("images", f"{cname}: no image")
            elif "@sha256:" not in image and ":" not in last:
                fail("images", f"{cname}: image {image} has no tag")
            elif last.endswith(":latest"):
                fail("images", f"{cname}: image {image} uses latest")
            for env in container.get("env") or []:
                ename = env.get("name", "")
                if "value" in env and CREDENTIAL.search(str(env.get("value"))):
                    fail("secrets", f"{cname}: env {ename} holds something that looks like a credential")
                if SECRET_NAME.search(ename) and not NAMES_A_THING.search(ename):
                    if "valueFrom" not in env and env.get("value") not in (None, ""):
                        fail("secrets", f"{cname}: env {ename} is set inline; use valueFrom.secretKeyRef")
                ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
                if ref and not ref.get("optional"):
                    cm = configmaps.get(ref.get("name"))
                    if cm is None or ref.get("key") not in (cm.get("data") or {}):
                        fail("refs", f"{cname}: env {ename} names ConfigMap key {ref.get('name')}/{ref.get('key')}, not rendered")
        # References from volumes.
        for volume in spec.get("volumes") or []:
            sources = [volume.get("configMap")] if volume.get("configMap") else []
            sources += [
                s["configMap"] for s in (volume.get("projected") or {}).get("sources") or [] if s.get("configMap")
            ]
            for source in sources:
                cm = configmaps.get(source.get("name"))
                if cm is None:
                    if not source.get("optional"):
                        fail("refs", f"{where}: volume {volume['name']} names ConfigMap {source.get('name')}, not rendered")
                    continue
                for item in source.get("items") or []:
                    if item.get("key") not in (cm.get("data") or {}):
                        fail("refs", f"{where}: volume {volume['name']} mounts key {item.get('key')}, not in {source.get('name')}")
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and claim not in pvcs and want_router:
                fail("refs", f"{where}: volume {volume['name']} claims PVC {claim}, not rendered")

    for svc in (d for d in docs if d.get("kind") == "Service"):
        selector = (svc.get("spec") or {}).get("selector") or {}
        if selector and not any(
            all(((t.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items())
            for _, t in templates
        ):
            fail("refs", f"{name_of(svc)}: selector {selector} matches no pod template")

    routers = [d for d in docs if is_router(d)]
    if not routers and want_router:
        fail("scaling", f"no Deployment labelled app.kubernetes.io/name={ROUTER}")
    for router in routers:
        check_router(router, docs, configmaps, fail)
    return problems


def check_router(router: dict, docs: list[dict], configmaps: dict, fail) -> None:
    where = name_of(router)
    template = router["spec"]["template"]
    spec = template["spec"]
    labels = template["metadata"].get("labels") or {}
    container = next((c for c in spec["containers"] if c.get("name") == ROUTER), spec["containers"][0])
    env = {e.get("name"): e for e in container.get("env") or []}

    # The rendered router.toml: the ConfigMap mounted at /app/config.
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in spec.get("volumes") or []}

    def configmap_at(path: str) -> tuple[dict | None, dict]:
        volume = volumes.get(mounts.get(path, ""), {})
        source = volume.get("configMap") or {}
        return configmaps.get(source.get("name")), source

    config_cm, _ = configmap_at("/app/config")
    settings: dict = {}
    if config_cm is None or "router.toml" not in (config_cm.get("data") or {}):
        fail("refs", f"{where}: no ConfigMap with router.toml mounted at /app/config")
    else:
        try:
            settings = tomllib.loads(config_cm["data"]["router.toml"])
        except tomllib.TOMLDecodeError as error:
            fail("refs", f"{where}: the rendered router.toml does not parse: {error}")
        rules_file = (settings.get("meta") or {}).get("rules_file", "config/meta_rules.toml")
        if rules_file.startswith("config/") and rules_file[len("config/"):] not in config_cm["data"]:
            fail("refs", f"{where}: meta.rules_file {rules_file} is not in {config_cm['metadata']['name']}")

    # Every prompt file router.toml names is mounted under /app/prompts.
    prompts_cm, prompts_source = configmap_at("/app/prompts")
    if prompts_cm is None:
        fail("refs", f"{where}: no prompts ConfigMap mounted at /app/prompts")
    elif settings:
        items = prompts_source.get("items")
        mounted = {i["path"] for i in items} if items else set(prompts_cm.get("data") or {})
        named = set()
        for route in (settings.get("routes") or {}).values():
            if route.get("prompt"):
                named.add(route["prompt"])
            for key in ("prompt", "injection"):
                if (route.get("search") or {}).get(key):
                    named.add(route["search"][key])
        for prompt in sorted(named - mounted):
            fail("refs", f"{where}: router.toml names prompt {prompt}, not mounted under /app/prompts")

    # Grace: preStop sleep + shutdown_grace_secs + margin within the termination grace.
    grace = (settings.get("server") or {}).get("shutdown_grace_secs", 30)
    override = env.get("AI_ROUTER_SERVER__SHUTDOWN_GRACE_SECS", {}).get("value")
    if override is not None:
        grace = int(override)
    sleep = (((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds")
    if sleep is None:
        fail("grace", f"{where}: no preStop sleep (lifecycle.preStop.sleep.seconds)")
        sleep = 0
    period = spec.get("terminationGracePeriodSeconds", 30)
    need = grace + sleep + FLUSH_MARGIN_SECS
    if period < need:
        fail("grace", f"{where}: terminationGracePeriodSeconds {period} < shutdown_grace_secs {grace} + preStop {sleep} + {FLUSH_MARGIN_SECS}")

    # Sessions: one folder per pod.
    sessions_dir = env.get("AI_ROUTER_SESSIONS__DIR", {}).get("value", "")
    pod_name = ((env.get("POD_NAME") or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
    order = [e.get("name") for e in container.get("env") or []]
    if "$(POD_NAME)" not in sessions_dir or pod_name != "metadata.name":
        fail("sessions", f"{where}: AI_ROUTER_SESSIONS__DIR must hold $(POD_NAME) from metadata.name, got {sessions_dir!r}")
    elif order.index("POD_NAME") > order.index("AI_ROUTER_SESSIONS__DIR"):
        # Kubernetes expands $(VAR) only from variables listed before; otherwise every pod
        # would write the literal folder "$(POD_NAME)", the same for all.
        fail("sessions", f"{where}: POD_NAME comes after AI_ROUTER_SESSIONS__DIR, so $(POD_NAME) is not expanded")
    elif not any(
        PurePosixPath(sessions_dir.replace("$(POD_NAME)", "x")).is_relative_to(path)
        for path, vol in mounts.items()
        if not volumes.get(vol, {}).get("configMap")
    ):
        fail("sessions", f"{where}: the sessions folder {sessions_dir} is on no writable volume")

    # Scaling: an HPA owns the count, a PDB keeps one.
    def selects(selector: dict) -> bool:
        match = (selector or {}).get("matchLabels") or {}
        return bool(match) and all(labels.get(k) == v for k, v in match.items())

    pdbs = [d for d in docs if d.get("kind") == "PodDisruptionBudget" and selects(d["spec"].get("selector"))]
    hpas = [
        d
        for d in docs
        if d.get("kind") == "HorizontalPodAutoscaler"
        and d["spec"].get("scaleTargetRef", {}).get("kind") == "Deployment"
        and d["spec"]["scaleTargetRef"].get("name") == router["metadata"]["name"]
    ]
    if not pdbs:
        fail("scaling", f"{where}: no PodDisruptionBudget selects it")
    if not hpas:
        fail("scaling", f"{where}: no HorizontalPodAutoscaler targets it")
    for hpa in hpas:
        low = hpa["spec"].get("minReplicas", 1)
        if low < MIN_ROUTER_REPLICAS:
            fail("scaling", f"{name_of(hpa)}: minReplicas {low} < {MIN_ROUTER_REPLICAS}")
        for pdb in pdbs:
            keep = pdb["spec"].get("minAvailable")
            if isinstance(keep, int) and keep >= low:
                fail("scaling", f"{name_of(pdb)}: minAvailable {keep} >= minReplicas {low}: a drain could never evict")
        if "replicas" in router["spec"]:
            fail("scaling", f"{where}: sets replicas although {name_of(hpa)} owns the count (kubectl apply would reset it)")


def report(path: str, docs: list[dict], want_router: bool = True) -> bool:
    problems = check(docs, want_router)
    kinds: dict[str, int] = {}
    for doc in docs:
        kinds[doc.get("kind")] = kinds.get(doc.get("kind"), 0) + 1
    if problems:
        for rule, message in problems:
            print(f"  FAIL [{rule}] {message}")
        return False
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"  ok   rules: {path}: {summary}")
    return True


# --- self-test ------------------------------------------------------------------------


def router_container(docs: list[dict]) -> dict:
    router = next(d for d in docs if is_router(d))
    return router["spec"]["template"]["spec"]["containers"][0]


def router_deployment(docs: list[dict]) -> dict:
    return next(d for d in docs if is_router(d))


def set_env(docs: list[dict], name: str, entry: dict) -> None:
    env = router_container(docs).setdefault("env", [])
    env[:] = [e for e in env if e.get("name") != name] + [dict(entry, name=name)]


def mutations():
    """(description, rule it must trip, function that breaks a copy of the good render)."""

    def without(kind):
        return lambda docs: docs.__setitem__(slice(None), [d for d in docs if d.get("kind") != kind])

    def grace_toml(docs):
        cm = next(d for d in docs if d.get("kind") == "ConfigMap" and "router.toml" in (d.get("data") or {}))
        cm["data"]["router.toml"] = cm["data"]["router.toml"].replace(
            "shutdown_grace_secs = 30", "shutdown_grace_secs = 120"
        )

    return [
        ("no readiness probe", "probes", lambda d: router_container(d).pop("readinessProbe")),
        ("no liveness probe", "probes", lambda d: router_container(d).pop("livenessProbe")),
        ("no memory limit", "resources", lambda d: router_container(d)["resources"]["limits"].pop("memory")),
        ("no requests", "resources", lambda d: router_container(d)["resources"].pop("requests")),
        ("writable root filesystem", "security",
         lambda d: router_container(d)["securityContext"].update(readOnlyRootFilesystem=False)),
        ("privilege escalation", "security",
         lambda d: router_container(d)["securityContext"].pop("allowPrivilegeEscalation")),
        ("root allowed", "security", lambda d: (
            router_container(d)["securityContext"].pop("runAsNonRoot"),
            router_deployment(d)["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot"))),
        ("capabilities kept", "security", lambda d: router_container(d)["securityContext"].pop("capabilities")),
        ("hostNetwork", "security",
         lambda d: router_deployment(d)["spec"]["template"]["spec"].update(hostNetwork=True)),
        ("image latest", "images", lambda d: router_container(d).update(image="ai-router:latest")),
        ("image without tag", "images", lambda d: router_container(d).update(image="registry.example:5000/ai-router")),
        ("inline API key", "secrets", lambda d: set_env(d, "XAI_API_KEY", {"value": "not-a-real-key"})),
        ("credential in a value", "secrets",
         lambda d: set_env(d, "EXTRA", {"value": "xai-" + "A1b2C3d4E5f6G7h8I9j0"})),
        ("a shipped Secret", "secrets",
         lambda d: d.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"},
                             "stringData": {"XAI_API_KEY": "x"}})),
        ("grace too short", "grace",
         lambda d: router_deployment(d)["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=30)),
        ("shutdown_grace_secs raised in router.toml", "grace", grace_toml),
        ("shutdown_grace_secs raised by env", "grace",
         lambda d: set_env(d, "AI_ROUTER_SERVER__SHUTDOWN_GRACE_SECS", {"value": "60"})),
        ("no preStop", "grace", lambda d: router_container(d).pop("lifecycle")),
        ("no PDB", "scaling", without("PodDisruptionBudget")),
        ("no HPA", "scaling", without("HorizontalPodAutoscaler")),
        ("replicas beside the HPA", "scaling", lambda d: router_deployment(d)["spec"].update(replicas=2)),
        ("shared session folder", "sessions",
         lambda d: set_env(d, "AI_ROUTER_SESSIONS__DIR", {"value": "/app/logs/sessions"})),
        ("POD_NAME defined after its use", "sessions", lambda d: router_container(d).update(
            env=[e for e in router_container(d)["env"] if e["name"] != "POD_NAME"]
            + [e for e in router_container(d)["env"] if e["name"] == "POD_NAME"])),
        ("prompt ConfigMap missing a key", "refs", lambda d: next(
            c for c in d if c.get("kind") == "ConfigMap" and "primary__system.md" in (c.get("data") or {})
        )["data"].pop("primary__system.md")),
        ("Service selects nothing", "refs", lambda d: next(
            s for s in d if s.get("kind") == "Service")["spec"]["selector"].update({"app.kubernetes.io/name": "typo"})),
    ]


def self_test(rendered: str, fixture: str) -> bool:
    good = load(rendered)
    ok = True
    if check(good):
        print(f"  FAIL self-test: the unbroken render {rendered} does not pass")
        return False
    for description, rule, breaker in mutations():
        docs = copy.deepcopy(good)
        breaker(docs)
        rules = {r for r, _ in check(docs)}
        if rule not in rules:
            ok = False
            print(f"  FAIL self-test: {description}: expected [{rule}], got {sorted(rules) or 'a pass'}")
    print(f"  {'ok  ' if ok else 'FAIL'} self-test: {len(mutations())} mutations of the good render each fail their rule")

    with open(fixture, encoding="utf-8") as handle:
        expect_line = next((line for line in handle if line.startswith("# expect:")), "")
    expected = set(expect_line.removeprefix("# expect:").split())
    found = {r for r, _ in check(load(fixture))}
    if not expected or expected - found:
        ok = False
        print(f"  FAIL self-test: {fixture}: expected {sorted(expected)}, got {sorted(found)}")
    else:
        print(f"  ok   self-test: the broken fixture fails [{', '.join(sorted(found))}]")
    return ok


def main(argv: list[str]) -> int:
    if argv[:1] == ["--self-test"] and len(argv) == 3:
        return 0 if self_test(argv[1], argv[2]) else 1
    want_router = argv[:1] != ["--no-router"]
    paths = argv if want_router else argv[1:]
    if not paths or paths[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    results = [report(path, load(path), want_router) for path in paths]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
