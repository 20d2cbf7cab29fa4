//! The configuration files shipped in `deploy/` load with the binaries' own config loaders
//! (unknown keys and bad values are errors there), so a manifest never mounts a config that
//! stops its pod at start.

use std::path::{Path, PathBuf};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy").join(path)
}

#[test]
fn event_service_configs_load() {
    for p in ["k8s/base/event-service.toml", "k8s/overlays/gke/config/event-service.toml"] {
        let c = event_service::Config::load(&deploy(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(c.listen.port(), 8080, "{p}: the manifests' containerPort");
        assert!(c.shutdown_timeout_secs < 45, "{p}: below terminationGracePeriodSeconds");
    }
}

#[test]
fn exporter_configs_load() {
    for p in ["k8s/base/exporter.toml", "k8s/overlays/gke/config/exporter.toml"] {
        let c = exporter::Config::load(&deploy(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(c.metrics_listen.map(|a| a.port()), Some(9103), "{p}: the manifests' probe port");
        assert!(c.close.idle_secs > 60 && c.close.allowed_lateness_secs > 60, "{p}: above the ack deadline");
        assert!(c.shutdown_timeout_secs < 45, "{p}: below terminationGracePeriodSeconds");
    }
}

#[test]
fn tailer_daemonset_config_loads() {
    let p = "k8s/tailer-daemonset/tailer.toml";
    let c = tailer::Config::load(&deploy(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(c.metrics_listen.map(|a| a.port()), Some(9102), "{p}: the DaemonSet's probe port");
}
