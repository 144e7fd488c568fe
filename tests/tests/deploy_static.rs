//! Static checks of the deployment files (issue 5), run with the real binaries.
//!
//! There is no Docker engine or Kubernetes cluster on the CI machine, so these tests check
//! what would otherwise only fail at `docker compose up` / `kubectl apply` time:
//! - every `IDS_*` variable that `docker-compose.yml` or the Kubernetes manifests give a
//!   binary is a real setting of *that* binary (the binary itself is asked, through
//!   `--print-config`, because the config crate silently ignores unknown env vars);
//! - `depends_on` targets exist and their conditions can be met; processors can be scaled;
//! - the probe paths of the Deployment and the Dockerfile `HEALTHCHECK` are endpoints the
//!   processor really serves (the processor is started and probed over HTTP);
//! - the KEDA `maxReplicaCount` equals the partition count topic-init gives the flows topic,
//!   and the KEDA trigger watches the topic and group the processors really use;
//! - the Grafana dashboard only queries metrics the processor exports.
//!
//! Static-only checks of the schemas themselves (Compose spec, Kubernetes OpenAPI, KEDA CRD)
//! are in `scripts/check-deploy.sh`, which installs the validators.
//!
//! The binaries are expected in `target/debug/` (or `$CARGO_TARGET_DIR/debug/`): the
//! project's test command builds them before running the tests.

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------
// helpers: files

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Parses a (single-document) YAML file and resolves `<<` merge keys, as Compose does.
fn yaml(rel: &str) -> Yaml {
    let mut v: Yaml =
        serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: invalid YAML: {e}"));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{rel}: bad merge key: {e}"));
    v
}

/// All documents of a multi-document YAML file (split on `---` lines; no serde dependency).
fn yaml_docs(rel: &str) -> Vec<Yaml> {
    let text = read(rel);
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let cur = docs.last_mut().expect("at least one document");
            cur.push_str(line);
            cur.push('\n');
        }
    }
    docs.iter()
        .map(|d| {
            serde_yaml_ng::from_str::<Yaml>(d)
                .unwrap_or_else(|e| panic!("{rel}: invalid YAML: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn k8s_objects() -> Vec<(String, Yaml)> {
    let kust = yaml("deploy/k8s/kustomization.yaml");
    let resources = kust["resources"]
        .as_sequence()
        .expect("kustomization.yaml has resources");
    let mut out = Vec::new();
    for r in resources {
        let file = format!("deploy/k8s/{}", r.as_str().expect("resource is a path"));
        for doc in yaml_docs(&file) {
            out.push((file.clone(), doc));
        }
    }
    out
}

fn k8s_object(kind: &str, name: &str) -> Yaml {
    k8s_objects()
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind}/{name} in deploy/k8s (kustomization resources)"))
}

fn str_of(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Null => String::new(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

/// Compose interpolation as `docker compose` would do it with an empty shell environment:
/// `${VAR:-default}` / `${VAR-default}` -> default, `${VAR}` -> "", `$$` -> `$`.
fn interpolate(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(a) = after.strip_prefix('{') {
            let end = a
                .find('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in {s:?}"));
            let expr = &a[..end];
            if let Some(p) = expr.find(":-").or_else(|| expr.find('-')) {
                let skip = if expr[p..].starts_with(":-") { 2 } else { 1 };
                out.push_str(&interpolate(&expr[p + skip..]));
            }
            rest = &a[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn compose() -> Yaml {
    yaml("docker-compose.yml")
}

fn services(c: &Yaml) -> BTreeMap<String, Yaml> {
    c["services"]
        .as_mapping()
        .expect("compose has services")
        .iter()
        .map(|(k, v)| (str_of(k), v.clone()))
        .collect()
}

/// A service's environment (map or list form), interpolated.
fn service_env(svc: &Yaml) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    match &svc["environment"] {
        Yaml::Mapping(m) => {
            for (k, v) in m {
                env.insert(str_of(k), interpolate(&str_of(v)));
            }
        }
        Yaml::Sequence(items) => {
            for it in items {
                let s = str_of(it);
                let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                env.insert(k.to_string(), interpolate(v));
            }
        }
        Yaml::Null => {}
        other => panic!("unexpected environment form {other:?}"),
    }
    env
}

/// Which workspace binary a compose service runs (by its Dockerfile build target).
fn compose_binary(svc: &Yaml) -> Option<&'static str> {
    match svc["build"]["target"].as_str() {
        Some("processor") => Some("ids-processor"),
        Some("producer") => Some("ids-producer"),
        _ => None,
    }
}

fn depends_on(svc: &Yaml) -> Vec<(String, Option<String>)> {
    match &svc["depends_on"] {
        Yaml::Mapping(m) => m
            .iter()
            .map(|(k, v)| (str_of(k), v["condition"].as_str().map(str::to_string)))
            .collect(),
        Yaml::Sequence(items) => items.iter().map(|i| (str_of(i), None)).collect(),
        Yaml::Null => Vec::new(),
        other => panic!("unexpected depends_on form {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// helpers: binaries and HTTP

fn bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { repo().join(p) })
        .unwrap_or_else(|| repo().join("target"));
    let p = target.join("debug").join(name);
    assert!(
        p.is_file(),
        "{} not found: build the binaries first (`cargo build -p ids-producer -p ids-processor`; \
         the project's test command does this)",
        p.display()
    );
    p
}

/// A command with a clean environment: only PATH/HOME plus what the test sets, so that
/// IDS_* / OTEL_* variables of the developer's shell cannot leak into the result.
fn clean_command(binary: &str) -> Command {
    let mut cmd = Command::new(bin(binary));
    cmd.env_clear().current_dir(repo());
    for keep in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.env("OTEL_SDK_DISABLED", "true");
    cmd
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `IDS_KAFKA__SECURITY_PROTOCOL` -> ["kafka", "security.protocol"]; `IDS_GROUP_ID` -> ["group_id"].
fn config_path(var: &str) -> Vec<String> {
    let rest = var.strip_prefix("IDS_").expect("IDS_ variable");
    let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
    if parts.len() == 2 && parts[0] == "kafka" {
        return vec!["kafka".into(), parts[1].replace('_', ".")];
    }
    parts
}

fn lookup<'a>(json: &'a Json, path: &[String]) -> Option<&'a Json> {
    let mut cur = json;
    for p in path {
        cur = cur
            .get(p.as_str())
            .or_else(|| cur.get(p.replace('.', "_").as_str()))?;
    }
    Some(cur)
}

fn same_value(json: &Json, env_value: &str) -> bool {
    match json {
        Json::String(s) => s == env_value || s.contains("redacted") || s.chars().all(|c| c == '*'),
        Json::Bool(b) => env_value.eq_ignore_ascii_case(&b.to_string()),
        Json::Number(n) => match (n.as_f64(), env_value.parse::<f64>()) {
            (Some(a), Ok(b)) => (a - b).abs() < 1e-9,
            _ => false,
        },
        Json::Null => env_value.is_empty(),
        _ => false,
    }
}

/// Runs `<binary> --print-config` with `vars` set and checks each `IDS_*` var appears in the
/// effective config with its value. Returns a list of problems (empty = ok).
fn check_settings(binary: &str, origin: &str, vars: &BTreeMap<String, String>) -> Vec<String> {
    let ids: BTreeMap<_, _> = vars.iter().filter(|(k, _)| k.starts_with("IDS_")).collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut cmd = clean_command(binary);
    cmd.arg("--print-config")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &ids {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let out = child.wait_with_output().expect("wait for --print-config");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return vec![format!(
            "{origin}: `{binary} --print-config` with {:?} exited {}: {stderr}",
            ids.keys().collect::<Vec<_>>(),
            out.status
        )];
    }
    let start = stdout.find('{').unwrap_or(0);
    let json: Json = match serde_json::from_str(stdout[start..].trim()) {
        Ok(j) => j,
        Err(e) => {
            return vec![format!(
                "{origin}: {binary} --print-config is not JSON ({e}): {stdout}"
            )]
        }
    };
    let mut problems = Vec::new();
    for (k, v) in ids {
        match lookup(&json, &config_path(k)) {
            None => problems.push(format!(
                "{origin}: {k} is not a setting of {binary} (no `{}` in --print-config)",
                config_path(k).join(".")
            )),
            Some(got) if !same_value(got, v) => problems.push(format!(
                "{origin}: {k}={v:?} but {binary} --print-config shows {got}"
            )),
            Some(_) => {}
        }
    }
    problems
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Minimal HTTP/1.0 GET (the same request the container healthcheck sends); returns
/// (status, body). HTTP/1.0 means no chunked encoding and the server closes the connection.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Kills the processor when the test ends, whatever happens.
struct Running {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM first (graceful path), then SIGKILL.
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            if wait_with_timeout(&mut self.child, Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Starts the processor against a broker address where nothing listens: it must still serve
/// /healthz (alive) and answer /readyz with 503 (not ready: no group joined).
fn start_processor(http_port: u16) -> Running {
    let log = tempfile::NamedTempFile::new().expect("temp file");
    let mut cmd = clean_command("ids-processor");
    cmd.env("IDS_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("IDS_BROKERS", format!("127.0.0.1:{}", free_port()))
        .env(
            "IDS_MODEL_PATH",
            repo().join("models/artifacts/nsl-kdd.json"),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("reopen log"));
    let child = cmd.spawn().expect("start ids-processor");
    Running { child, log }
}

fn wait_healthy(p: &mut Running, port: u16, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = p.child.try_wait().expect("try_wait") {
            panic!(
                "ids-processor exited ({st}) before {path} answered; stderr:\n{}",
                p.log()
            );
        }
        if let Ok((200, _)) = http_get(port, path) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ids-processor did not answer 200 on {path} within 60 s; stderr:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ------------------------------------------------------------------------------------------
// compose

#[test]
fn compose_depends_on_targets_exist_and_conditions_can_be_met() {
    let c = compose();
    let svcs = services(&c);
    let image_healthcheck = |s: &Yaml| compose_binary(s) == Some("ids-processor");
    for (name, svc) in &svcs {
        for (dep, cond) in depends_on(svc) {
            let target = svcs
                .get(&dep)
                .unwrap_or_else(|| panic!("service {name} depends on unknown service {dep}"));
            match cond.as_deref() {
                None | Some("service_started") => {}
                Some("service_healthy") => assert!(
                    !target["healthcheck"].is_null() || image_healthcheck(target),
                    "{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                ),
                Some("service_completed_successfully") => {
                    let restart = target["restart"].as_str().unwrap_or("no");
                    assert_eq!(
                        restart, "no",
                        "{name} waits for {dep} to complete, but {dep} restarts ({restart})"
                    );
                }
                Some(other) => panic!("{name} -> {dep}: unknown condition {other}"),
            }
            // A profiled service is not started by a plain `docker compose up`: nothing
            // in the default set may depend on it.
            if svc["profiles"].is_null() {
                assert!(
                    target["profiles"].is_null(),
                    "{name} (default profile) depends on {dep}, which is only in a profile"
                );
            }
        }
    }
    // The pipeline waits for the broker and the topics.
    for pipeline in ["producer", "processor"] {
        let deps: BTreeMap<_, _> = depends_on(&svcs[pipeline]).into_iter().collect();
        assert_eq!(
            deps.get("kafka").cloned().flatten().as_deref(),
            Some("service_healthy"),
            "{pipeline} must wait for kafka to be healthy"
        );
        assert_eq!(
            deps.get("topic-init").cloned().flatten().as_deref(),
            Some("service_completed_successfully"),
            "{pipeline} must wait for topic-init to complete"
        );
    }
    // Monitoring is opt-in.
    for m in ["prometheus", "grafana"] {
        let profiles = svcs[m]["profiles"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{m} needs a profile"));
        assert!(profiles.iter().any(|p| p.as_str() == Some("monitoring")));
    }
}

#[test]
fn compose_processor_can_be_scaled() {
    let svcs = services(&compose());
    let processors: Vec<_> = svcs
        .iter()
        .filter(|(_, s)| compose_binary(s) == Some("ids-processor"))
        .collect();
    assert!(
        !processors.is_empty(),
        "no service builds the processor target"
    );
    for (name, svc) in processors {
        assert!(
            svc["container_name"].is_null(),
            "{name}: container_name prevents --scale"
        );
        assert!(
            svc["ports"].is_null(),
            "{name}: a published host port prevents --scale (use expose)"
        );
        let env = service_env(svc);
        let port = env
            .get("IDS_HTTP_ADDR")
            .and_then(|a| a.rsplit(':').next())
            .unwrap_or("8080")
            .to_string();
        let exposed: Vec<String> = svc["expose"]
            .as_sequence()
            .map(|s| s.iter().map(str_of).collect())
            .unwrap_or_default();
        assert!(
            exposed.contains(&port),
            "{name}: HTTP port {port} not exposed on the compose network"
        );
        // Prometheus finds every replica through compose DNS on that port.
        let prom = yaml("deploy/prometheus/prometheus.yml");
        let found = prom["scrape_configs"]
            .as_sequence()
            .expect("scrape_configs")
            .iter()
            .flat_map(|j| {
                j["dns_sd_configs"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default()
            })
            .any(|sd| {
                sd["names"]
                    .as_sequence()
                    .is_some_and(|n| n.iter().any(|x| x.as_str() == Some(name.as_str())))
                    && str_of(&sd["port"]) == port
            });
        assert!(
            found,
            "prometheus.yml has no dns_sd_configs for {name}:{port}"
        );
    }
}

#[test]
fn compose_bind_mounts_and_build_files_exist() {
    let c = compose();
    for (name, svc) in services(&c) {
        for v in svc["volumes"].as_sequence().cloned().unwrap_or_default() {
            let spec = str_of(&v);
            let host = spec.split(':').next().unwrap_or("");
            if host.starts_with("./") {
                assert!(
                    repo().join(host).exists() || host == "./data",
                    "{name}: bind mount source {host} does not exist"
                );
            }
        }
        if let Some(df) = svc["build"]["dockerfile"].as_str() {
            let ctx = svc["build"]["context"].as_str().unwrap_or(".");
            assert!(repo().join(ctx).join(df).is_file(), "{name}: {df} missing");
            let target = svc["build"]["target"].as_str().unwrap_or("");
            let dockerfile = read(df);
            assert!(
                dockerfile
                    .lines()
                    .any(|l| l.trim_start().starts_with("FROM ")
                        && l.trim_end().ends_with(&format!(" AS {target}"))),
                "{name}: build target {target:?} is not a stage of {df}"
            );
        }
    }
}

#[test]
fn compose_ids_variables_are_real_settings_of_their_binary() {
    let svcs = services(&compose());
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, svc) in &svcs {
        let env = service_env(svc);
        let ids_vars = env.keys().filter(|k| k.starts_with("IDS_")).count();
        match compose_binary(svc) {
            Some(binary) => {
                checked += ids_vars;
                problems.extend(check_settings(binary, &format!("compose {name}"), &env));
            }
            None => assert_eq!(
                ids_vars, 0,
                "compose service {name} sets IDS_* variables but runs no IDS binary"
            ),
        }
    }
    assert!(
        checked >= 10,
        "only {checked} IDS_* variables found in compose"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ------------------------------------------------------------------------------------------
// Kubernetes

fn configmaps() -> BTreeMap<String, BTreeMap<String, String>> {
    k8s_objects()
        .into_iter()
        .filter(|(_, d)| d["kind"].as_str() == Some("ConfigMap"))
        .map(|(_, d)| {
            let name = str_of(&d["metadata"]["name"]);
            let data = d["data"]
                .as_mapping()
                .map(|m| m.iter().map(|(k, v)| (str_of(k), str_of(v))).collect())
                .unwrap_or_default();
            (name, data)
        })
        .collect()
}

/// The environment a container gets: envFrom ConfigMaps (Secrets are optional and empty in
/// the repo) + literal env values.
fn container_env(container: &Yaml) -> BTreeMap<String, String> {
    let cms = configmaps();
    let mut env = BTreeMap::new();
    for src in container["envFrom"]
        .as_sequence()
        .cloned()
        .unwrap_or_default()
    {
        if let Some(name) = src["configMapRef"]["name"].as_str() {
            let data = cms
                .get(name)
                .unwrap_or_else(|| panic!("envFrom references unknown ConfigMap {name}"));
            env.extend(data.clone());
        }
    }
    for e in container["env"].as_sequence().cloned().unwrap_or_default() {
        if let Some(v) = e["value"].as_str() {
            env.insert(str_of(&e["name"]), v.to_string());
        }
    }
    env
}

fn k8s_binary(container: &Yaml) -> &'static str {
    let image = str_of(&container["image"]);
    if image.contains("ids-processor") {
        "ids-processor"
    } else if image.contains("ids-producer") {
        "ids-producer"
    } else {
        panic!("unknown image {image}")
    }
}

fn processor_container() -> Yaml {
    let dep = k8s_object("Deployment", "ids-processor");
    dep["spec"]["template"]["spec"]["containers"][0].clone()
}

#[test]
fn k8s_ids_variables_are_real_settings_of_their_binary() {
    let mut problems = Vec::new();
    for (kind, name) in [("Deployment", "ids-processor"), ("Job", "ids-producer")] {
        let obj = k8s_object(kind, name);
        for c in obj["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .expect("containers")
        {
            let env = container_env(c);
            problems.extend(check_settings(
                k8s_binary(c),
                &format!("k8s {kind}/{name}"),
                &env,
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn k8s_deployment_shape() {
    let dep = k8s_object("Deployment", "ids-processor");
    let spec = &dep["spec"]["template"]["spec"];
    let grace = spec["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        grace >= 30,
        "terminationGracePeriodSeconds {grace} too short for a clean group leave"
    );
    let c = processor_container();
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(
                !c["resources"][k][r].is_null(),
                "processor resources.{k}.{r} missing"
            );
        }
    }
    let env = container_env(&c);
    let port = env
        .get("IDS_HTTP_ADDR")
        .and_then(|a| a.rsplit(':').next())
        .unwrap_or("8080")
        .to_string();
    let http = c["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .find(|p| p["name"].as_str() == Some("http"))
        .expect("a port named http");
    assert_eq!(
        str_of(&http["containerPort"]),
        port,
        "containerPort != http_addr port"
    );
    assert!(
        c["envFrom"]
            .as_sequence()
            .expect("envFrom")
            .iter()
            .any(|e| !e["secretRef"].is_null()),
        "processor takes no Secret"
    );
    let pdb = k8s_object("PodDisruptionBudget", "ids-processor");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"], dep["spec"]["selector"]["matchLabels"],
        "PDB selector does not match the Deployment"
    );
}

#[test]
fn keda_scaledobject_matches_topic_partitions_group_and_deployment() {
    let so = k8s_object("ScaledObject", "ids-processor");
    let svcs = services(&compose());
    let init = service_env(&svcs["topic-init"]);
    let partitions: u64 = init["FLOWS_PARTITIONS"]
        .parse()
        .expect("FLOWS_PARTITIONS is a number");
    // topic-init really uses that variable for the flows topic.
    let script = interpolate(&str_of(&svcs["topic-init"]["command"][0]));
    let flows_create = script
        .split("$kt")
        .find(|s| s.contains("--topic \"$FLOWS_TOPIC\"") && s.contains("--create"))
        .expect("topic-init creates $FLOWS_TOPIC");
    assert!(
        flows_create.contains("--partitions \"$FLOWS_PARTITIONS\""),
        "topic-init does not create the flows topic with $FLOWS_PARTITIONS partitions"
    );
    assert_eq!(
        so["spec"]["maxReplicaCount"].as_u64(),
        Some(partitions),
        "KEDA maxReplicaCount must equal the flows topic's partition count"
    );

    let trig = &so["spec"]["triggers"][0];
    assert_eq!(trig["type"].as_str(), Some("kafka"));
    let md = &trig["metadata"];
    for k in ["bootstrapServers", "consumerGroup", "topic", "lagThreshold"] {
        assert!(
            md[k].as_str().is_some_and(|s| !s.is_empty()),
            "kafka trigger lacks {k}"
        );
    }
    let lag: u64 = md["lagThreshold"]
        .as_str()
        .unwrap_or("")
        .parse()
        .expect("lagThreshold is a number");
    assert!(lag > 0);

    let proc_env = container_env(&processor_container());
    let compose_proc = service_env(&svcs["processor"]);
    assert_eq!(
        md["topic"].as_str(),
        Some(proc_env["IDS_FLOWS_TOPIC"].as_str()),
        "KEDA watches another topic than the processor reads"
    );
    assert_eq!(md["topic"].as_str(), Some(init["FLOWS_TOPIC"].as_str()));
    assert_eq!(
        md["consumerGroup"].as_str(),
        Some(proc_env["IDS_GROUP_ID"].as_str()),
        "KEDA watches another group than the processors join"
    );
    assert_eq!(compose_proc["IDS_GROUP_ID"], proc_env["IDS_GROUP_ID"]);
    assert_eq!(
        md["bootstrapServers"].as_str(),
        Some(proc_env["IDS_BROKERS"].as_str())
    );
    assert_eq!(
        so["spec"]["scaleTargetRef"]["name"].as_str(),
        Some("ids-processor")
    );
    assert_eq!(
        so["spec"]["scaleTargetRef"]["kind"]
            .as_str()
            .unwrap_or("Deployment"),
        "Deployment"
    );
}

// ------------------------------------------------------------------------------------------
// Dockerfile

/// HEALTHCHECK instruction (continuation lines joined) of the Dockerfile.
fn dockerfile_healthcheck() -> String {
    let df = read("deploy/Dockerfile");
    let mut joined = String::new();
    let mut logical = Vec::new();
    for line in df.lines() {
        let t = line.trim();
        if t.starts_with('#') {
            continue;
        }
        if let Some(s) = t.strip_suffix('\\') {
            joined.push_str(s);
            joined.push(' ');
        } else {
            joined.push_str(t);
            logical.push(std::mem::take(&mut joined));
        }
    }
    let hc: Vec<_> = logical
        .into_iter()
        .filter(|l| l.starts_with("HEALTHCHECK"))
        .collect();
    assert_eq!(hc.len(), 1, "expected one HEALTHCHECK, got {hc:?}");
    hc[0].clone()
}

fn healthcheck_path() -> String {
    let hc = dockerfile_healthcheck();
    hc.split(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '[' || c == ']')
        .find(|t| t.starts_with('/') && !t.starts_with("/usr/") && !t.starts_with("/bin/"))
        .unwrap_or_else(|| panic!("no URL path in {hc}"))
        .to_string()
}

#[test]
fn dockerfile_build_user_copies_and_healthcheck() {
    let df = read("deploy/Dockerfile");
    assert!(
        df.lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("deploy/build.sh")),
        "the Dockerfile must build with deploy/build.sh (the line CI runs)"
    );
    let build = read("deploy/build.sh");
    assert!(build.contains("cargo build --release --locked -p ids-producer -p ids-processor"));
    // Non-root runtime user.
    let users: Vec<_> = df
        .lines()
        .filter_map(|l| l.trim().strip_prefix("USER "))
        .collect();
    assert!(!users.is_empty(), "no USER in the Dockerfile");
    for u in users {
        let u = u.split(':').next().unwrap_or(u).trim();
        assert!(u != "root" && u != "0", "runs as root: USER {u}");
    }
    // Every COPY from the build context exists and is not excluded by .dockerignore.
    let ignore = read(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in [".git", "target/", "data/"] {
        assert!(ignored.contains(&must), ".dockerignore must exclude {must}");
    }
    for l in df.lines().map(str::trim).filter(|l| l.starts_with("COPY ")) {
        let args: Vec<&str> = l.split_whitespace().skip(1).collect();
        if args.iter().any(|a| a.starts_with("--from")) {
            continue;
        }
        let paths: Vec<&str> = args.into_iter().filter(|a| !a.starts_with("--")).collect();
        for src in &paths[..paths.len() - 1] {
            if *src == "." {
                continue;
            }
            assert!(
                repo().join(src).exists(),
                "Dockerfile COPY source {src} does not exist"
            );
            assert!(
                !ignored
                    .iter()
                    .any(|i| src.starts_with(i.trim_end_matches('/'))),
                "Dockerfile COPY source {src} is excluded by .dockerignore"
            );
        }
    }
    // The HEALTHCHECK probes the same readiness path as Kubernetes.
    let readiness = str_of(&processor_container()["readinessProbe"]["httpGet"]["path"]);
    assert_eq!(healthcheck_path(), readiness);
    assert!(dockerfile_healthcheck().contains("ids-healthcheck"));
}

// ------------------------------------------------------------------------------------------
// The processor really serves the probed paths

/// `ids_x_total`, `ids_x_bucket` ... -> metric family names used by the Grafana dashboard.
fn dashboard_metrics() -> BTreeSet<String> {
    let d: Json = serde_json::from_str(&read("deploy/grafana/dashboards/ids-stream.json"))
        .expect("dashboard JSON");
    let mut names = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().cloned().unwrap_or_default() {
            let expr = t["expr"].as_str().unwrap_or("");
            let mut cur = String::new();
            for ch in expr.chars().chain(std::iter::once(' ')) {
                if ch.is_ascii_alphanumeric() || ch == '_' || ch == ':' {
                    cur.push(ch);
                } else {
                    if cur.starts_with("ids_") {
                        names.insert(std::mem::take(&mut cur));
                    }
                    cur.clear();
                }
            }
        }
    }
    names
}

/// Whether the exposition text declares `name` (allowing the `_bucket`/`_sum`/`_count`
/// series of a histogram and counters whose TYPE line omits `_total`).
fn exposition_has(text: &str, name: &str) -> bool {
    let mut candidates = vec![name.to_string()];
    for suffix in ["_bucket", "_sum", "_count", "_total"] {
        if let Some(base) = name.strip_suffix(suffix) {
            candidates.push(base.to_string());
        }
    }
    text.lines().any(|l| {
        let l = l.trim();
        let metric = if let Some(rest) = l
            .strip_prefix("# TYPE ")
            .or_else(|| l.strip_prefix("# HELP "))
        {
            rest.split_whitespace().next().unwrap_or("")
        } else {
            l.split(['{', ' ']).next().unwrap_or("")
        };
        metric == name || candidates.iter().any(|c| c == metric)
    })
}

#[test]
fn processor_serves_probe_paths_and_dashboard_metrics() {
    let c = processor_container();
    let liveness = str_of(&c["livenessProbe"]["httpGet"]["path"]);
    let readiness = str_of(&c["readinessProbe"]["httpGet"]["path"]);
    let startup = str_of(&c["startupProbe"]["httpGet"]["path"]);
    let healthcheck = healthcheck_path();

    let port = free_port();
    let mut p = start_processor(port);
    wait_healthy(&mut p, port, &liveness);

    for path in [&liveness, &startup] {
        let (status, _) = http_get(port, path).expect("GET");
        assert_eq!(
            status, 200,
            "{path} (liveness/startup probe) must answer 200"
        );
    }
    // No broker: the group cannot be joined, so not ready - but the endpoint exists.
    for path in [&readiness, &healthcheck] {
        let (status, body) = http_get(port, path).expect("GET");
        assert_eq!(
            status, 503,
            "{path} (readiness / Dockerfile HEALTHCHECK) must answer 503 before the group is joined, got {status}: {body}"
        );
    }
    let (status, _) = http_get(port, "/no-such-endpoint").expect("GET");
    assert_eq!(
        status, 404,
        "unknown paths must 404 (else the checks above prove nothing)"
    );

    let (status, metrics) = http_get(port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "/metrics");
    // A labelled family (lag per partition, DLQ per kind, rebalances per kind) has no series
    // until its first sample, and an idle processor has none: for those, accept a metric
    // registered under that name in the processor's source.
    let source: String = std::fs::read_dir(repo().join("processor/src"))
        .expect("processor/src")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    let missing: Vec<_> = dashboard_metrics()
        .into_iter()
        .filter(|m| !exposition_has(&metrics, m) && !registered_in_source(&source, m))
        .collect();
    assert!(
        missing.is_empty(),
        "the Grafana dashboard queries metrics the processor does not export: {missing:?}\n/metrics:\n{metrics}"
    );
}

/// `name` (or its base without `_total`/`_bucket`/...) appears as a string literal.
fn registered_in_source(source: &str, name: &str) -> bool {
    let mut candidates = vec![name.to_string()];
    for suffix in ["_bucket", "_sum", "_count", "_total", "_info"] {
        if let Some(base) = name.strip_suffix(suffix) {
            candidates.push(base.to_string());
        }
    }
    candidates
        .iter()
        .any(|c| source.contains(&format!("\"{c}\"")))
}

/// The settings check must be able to fail: the config loader ignores unknown variables,
/// so an unknown key has to be caught by its absence from `--print-config`.
#[test]
fn settings_check_rejects_unknown_and_misread_variables() {
    let vars: BTreeMap<String, String> = [
        ("IDS_NOT_A_SETTING".to_string(), "1".to_string()),
        ("IDS_GROUP_ID".to_string(), "g1".to_string()),
    ]
    .into();
    let problems = check_settings("ids-processor", "self-test", &vars);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("IDS_NOT_A_SETTING"), "{problems:?}");
    // A setting of the processor is not one of the producer.
    let vars: BTreeMap<String, String> =
        [("IDS_ALERTS_TOPIC".to_string(), "alerts".to_string())].into();
    assert_eq!(check_settings("ids-producer", "self-test", &vars).len(), 1);
}

#[test]
fn interpolation_follows_compose_rules() {
    assert_eq!(interpolate("${A:-x/y.txt}"), "x/y.txt");
    assert_eq!(interpolate("${A-1}"), "1");
    assert_eq!(interpolate("${A}"), "");
    assert_eq!(interpolate("a $$b ${C:-c}"), "a $b c");
    assert_eq!(
        config_path("IDS_KAFKA__SECURITY_PROTOCOL"),
        ["kafka", "security.protocol"]
    );
    assert_eq!(config_path("IDS_GROUP_ID"), ["group_id"]);
}
