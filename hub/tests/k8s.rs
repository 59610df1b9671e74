//! The Kubernetes manifests in `deploy/k8s/`, checked offline.
//!
//! Why not kubeconform: it downloads the API's JSON schemas at run time,
//! and CI has no internet (only package registries). Instead each manifest
//! is read into the `k8s-openapi` crate's types, which are generated from
//! the Kubernetes OpenAPI schema (v1.33 here): a wrong type or a bad
//! `apiVersion`/`kind` fails to parse, and every field the schema does not
//! know (a typo such as `readinesProbe`, which the API server would drop
//! silently with a warning) is caught through `serde_ignored`, and a
//! wrong value is reported with its path (`serde_path_to_error`). What no
//! schema can see is checked on top: selectors match the pod's labels,
//! probe and Service ports exist on the container and are the ports vhub
//! listens on, the ConfigMap passes vhub's own config validator, the paths
//! it names are on mounted volumes, and the pod runs without root or
//! capabilities. `deploy/k8s/scale-out/` (a DaemonSet of per-node hubs on
//! the host network, docs/SCALE-OUT.md) is checked the same way, with its
//! own rules (host network, NET_ADMIN, the TUN device).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hub::config::Config;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Secret, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s")
}

/// Reads one YAML document into a Kubernetes type; an error names every
/// field the schema does not have.
fn typed<T: DeserializeOwned>(doc: &serde_yaml::Value, what: &str) -> Result<T, String> {
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path| unknown.push(path.to_string());
    let de = serde_ignored::Deserializer::new(doc.clone(), &mut note);
    // serde_path_to_error names the field of a wrong value.
    let t: T = serde_path_to_error::deserialize(de).map_err(|e| format!("{what}: {e}"))?;
    if !unknown.is_empty() {
        return Err(format!(
            "{what}: fields not in the Kubernetes schema: {unknown:?}"
        ));
    }
    Ok(t)
}

#[derive(Default)]
struct Manifests {
    deployments: Vec<Deployment>,
    daemon_sets: Vec<DaemonSet>,
    services: Vec<Service>,
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
    kustomization: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    resources: Vec<String>,
}

/// Parses every document of `text` (from `file`) into `m`.
fn parse_into(m: &mut Manifests, file: &str, text: &str) -> Result<(), String> {
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc: serde_yaml::Value =
            serde::Deserialize::deserialize(de).map_err(|e| format!("{file}: {e}"))?;
        if doc.is_null() {
            continue;
        }
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let what = format!("{file} document {} ({kind})", i + 1);
        match kind.as_str() {
            "Deployment" => m.deployments.push(typed(&doc, &what)?),
            "DaemonSet" => m.daemon_sets.push(typed(&doc, &what)?),
            "Service" => m.services.push(typed(&doc, &what)?),
            "ConfigMap" => m.config_maps.push(typed(&doc, &what)?),
            "Secret" => m.secrets.push(typed(&doc, &what)?),
            "Kustomization" => {
                let k: Kustomization =
                    serde_yaml::from_value(doc).map_err(|e| format!("{what}: {e}"))?;
                m.kustomization = k.resources;
            }
            other => {
                return Err(format!(
                    "{what}: kind {other:?} is not checked by this test"
                ))
            }
        }
    }
    Ok(())
}

fn load() -> (Manifests, Vec<String>) {
    load_from(&k8s_dir())
}

/// Every manifest of `dir` (not of its subdirectories: each is a
/// kustomization of its own, e.g. `scale-out/`).
fn load_from(dir: &Path) -> (Manifests, Vec<String>) {
    let mut m = Manifests::default();
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            name.ends_with(".yaml"),
            "unexpected file {name} in {}",
            dir.display()
        );
        parse_into(&mut m, &name, &std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{e}"));
        files.push(name);
    }
    files.sort();
    (m, files)
}

/// The container port a probe or Service names (by name or number).
fn resolve_port(c: &Container, p: &IntOrString) -> Option<i32> {
    let ports = c.ports.as_deref().unwrap_or_default();
    match p {
        IntOrString::Int(n) => ports.iter().find(|x| x.container_port == *n),
        IntOrString::String(name) => ports.iter().find(|x| x.name.as_deref() == Some(name)),
    }
    .map(|x| x.container_port)
}

fn is_under(path: &Path, c: &Container) -> bool {
    c.volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|m| path.starts_with(&m.mount_path))
}

#[test]
fn the_schema_check_catches_typos_wrong_types_and_wrong_kinds() {
    // The check must fail where kubectl would warn or refuse, or its
    // silence on the real manifests means nothing.
    let good = std::fs::read_to_string(k8s_dir().join("deployment.yaml")).unwrap();
    let cases = [
        ("readinessProbe:", "readinesProbe:", "readinesProbe"),
        ("replicas: 1", "replicas: one", "spec.replicas"),
        ("apiVersion: apps/v1", "apiVersion: apps/v2", "apps/v2"),
        (
            "      initContainers:",
            "      initContainer:",
            "initContainer",
        ),
    ];
    for (from, to, expect) in cases {
        assert!(good.contains(from), "{from}");
        let bad = good.replacen(from, to, 1);
        let err = match parse_into(&mut Manifests::default(), "bad.yaml", &bad) {
            Ok(()) => panic!("{to:?} was accepted"),
            Err(e) => e,
        };
        assert!(err.contains(expect), "{to:?}: {err}");
    }
}

#[test]
fn manifests_match_the_kubernetes_schema_and_each_other() {
    let (m, files) = load();
    // kustomization.yaml lists every other manifest.
    let listed: BTreeSet<&str> = m.kustomization.iter().map(String::as_str).collect();
    let present: BTreeSet<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| *f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization.yaml resources");

    let [deploy] = m.deployments.as_slice() else {
        panic!("one Deployment expected");
    };
    let spec = deploy.spec.as_ref().unwrap();
    assert_eq!(
        spec.replicas,
        Some(1),
        "a hub is one broadcast domain: one replica"
    );
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|md| md.labels.clone())
        .unwrap_or_default();
    let subset = |sel: &BTreeMap<String, String>| {
        !sel.is_empty() && sel.iter().all(|(k, v)| template_labels.get(k) == Some(v))
    };
    assert!(
        subset(spec.selector.match_labels.as_ref().unwrap()),
        "the Deployment's selector does not match its pod labels"
    );
    let pod: &PodSpec = spec.template.spec.as_ref().unwrap();
    let vhub = pod
        .containers
        .iter()
        .find(|c| c.name == "vhub")
        .expect("a container named vhub");

    // Security: no root, no privilege escalation, no capabilities beyond
    // NET_BIND_SERVICE (and that only for a port below 1024).
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.is_some_and(|u| u != 0));
    let low_port = vhub
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|p| p.container_port < 1024);
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let sc = c
            .security_context
            .as_ref()
            .unwrap_or_else(|| panic!("{}: securityContext", c.name));
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_ne!(sc.privileged, Some(true), "{}", c.name);
        let caps = sc.capabilities.as_ref().unwrap();
        assert!(
            caps.drop.as_ref().unwrap().iter().any(|d| d == "ALL"),
            "{}",
            c.name
        );
        let add: Vec<&String> = caps.add.iter().flatten().collect();
        let allowed: &[&str] = if low_port && c.name == "vhub" {
            &["NET_BIND_SERVICE"]
        } else {
            &[]
        };
        assert!(
            add.iter().all(|a| allowed.contains(&a.as_str())),
            "{}: {add:?}",
            c.name
        );
        if c.name == "vhub" && low_port {
            assert!(!add.is_empty(), "port < 1024 needs NET_BIND_SERVICE");
        }
    }
    assert_ne!(pod.host_network, Some(true), "no host networking needed");

    // The config in the ConfigMap passes vhub's validator and agrees with
    // the container's ports and mounts.
    let args = vhub.args.as_deref().unwrap();
    let config_path = Path::new(&args[args.iter().position(|a| a == "--config").unwrap() + 1]);
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    let mount_for = |path: &Path| {
        vhub.volume_mounts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|mnt| path.starts_with(&mnt.mount_path))
            .max_by_key(|mnt| mnt.mount_path.len())
            .map(|mnt| {
                assert!(
                    mnt.sub_path.is_none(),
                    "{}: a subPath mount never sees ConfigMap/Secret updates",
                    mnt.mount_path
                );
                volumes
                    .iter()
                    .find(|v| v.name == mnt.name)
                    .unwrap_or_else(|| panic!("no volume {}", mnt.name))
            })
    };
    let cm_name = mount_for(config_path)
        .and_then(|v| v.config_map.as_ref())
        .map(|c| c.name.clone())
        .expect("--config is on a ConfigMap volume");
    let cm = m
        .config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(cm_name.as_str()))
        .unwrap_or_else(|| panic!("ConfigMap {cm_name} is not in deploy/k8s"));
    let key = config_path.file_name().unwrap().to_str().unwrap();
    let text = &cm.data.as_ref().unwrap()[key];
    let config =
        Config::from_toml_named(text, "configmap.yaml vhub.toml").unwrap_or_else(|e| panic!("{e}"));

    let port = |name: &str| resolve_port(vhub, &IntOrString::String(name.into()));
    assert_eq!(
        port("https"),
        Some(i32::from(config.listen.port())),
        "https port vs listen"
    );
    let metrics = config.metrics_listen.expect("metrics on in k8s");
    assert!(
        metrics.ip().is_unspecified(),
        "metrics must listen on the pod IP"
    );
    assert_eq!(
        port("metrics"),
        Some(i32::from(metrics.port())),
        "metrics port vs metrics_listen"
    );
    let annotations = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap_or_default();
    assert_eq!(
        annotations.get("prometheus.io/scrape").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        annotations.get("prometheus.io/port"),
        Some(&metrics.port().to_string()),
        "the scrape annotation's port"
    );

    // Probes: on the HTTPS front (the port vhub serves TLS on).
    for (what, probe) in [
        ("readiness", &vhub.readiness_probe),
        ("liveness", &vhub.liveness_probe),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{what} probe"));
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"), "{what}");
        assert_eq!(
            resolve_port(vhub, &get.port),
            port("https"),
            "{what} probe port"
        );
        assert_eq!(
            get.path.as_deref(),
            Some("/"),
            "{what}: the hub's HTML page"
        );
    }

    // Paths in the config live on mounted volumes; Secrets hold the files.
    let admin = config.effective_admin_socket().expect("admin API on");
    assert!(
        is_under(admin.parent().unwrap(), vhub),
        "admin socket dir not mounted"
    );
    assert!(
        is_under(&config.effective_cert_dir(), vhub),
        "cert_dir not mounted"
    );
    let users = config.effective_users_file();
    let users_secret = mount_for(&users)
        .and_then(|v| v.secret.as_ref())
        .and_then(|s| s.secret_name.clone())
        .expect("users_file is on a Secret volume");
    let secret_keys = |name: &str| -> BTreeSet<String> {
        let s = m
            .secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("Secret {name} is not in deploy/k8s"));
        s.string_data
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .chain(s.data.iter().flatten().map(|(k, _)| k.clone()))
            .collect()
    };
    assert!(secret_keys(&users_secret).contains(users.file_name().unwrap().to_str().unwrap()));
    for v in volumes {
        if let Some(s) = &v.secret {
            let keys = secret_keys(s.secret_name.as_deref().unwrap());
            assert!(!keys.is_empty(), "Secret volume {} is empty", v.name);
        }
        if let Some(c) = &v.config_map {
            assert!(
                m.config_maps
                    .iter()
                    .any(|x| x.metadata.name.as_deref() == Some(c.name.as_str())),
                "{}",
                c.name
            );
        }
    }
    // The TLS secret has the keys the init container copies.
    let tls_keys = secret_keys("vhub-tls");
    assert!(
        tls_keys.contains("tls.crt") && tls_keys.contains("tls.key"),
        "{tls_keys:?}"
    );

    // Services select the pod and reach ports the container has.
    assert!(m.services.len() >= 2);
    for s in &m.services {
        let name = s.metadata.name.clone().unwrap_or_default();
        let ss = s.spec.as_ref().unwrap();
        assert!(
            subset(ss.selector.as_ref().unwrap()),
            "Service {name} selects no vhub pod"
        );
        for p in ss.ports.as_deref().unwrap() {
            let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
            assert!(
                resolve_port(vhub, &target).is_some(),
                "Service {name}: {target:?}"
            );
        }
    }
    let public = m
        .services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("vhub"))
        .unwrap();
    let ports = public.spec.as_ref().unwrap().ports.as_deref().unwrap();
    assert_eq!(
        ports.iter().map(|p| p.port).collect::<Vec<_>>(),
        [443],
        "the public Service is the HTTPS front only (metrics are plain HTTP)"
    );
}

/// `deploy/k8s/scale-out/` (docs/SCALE-OUT.md): a DaemonSet of per-node
/// hubs on the host network, each bridged into the node's VXLAN segment.
/// Checked as the Deployment is, with what differs on purpose: host
/// networking, NET_ADMIN as the one added capability (root, as a
/// capability takes effect only for root), the TUN device from the host.
#[test]
fn the_scale_out_daemonset_matches_the_schema_and_its_config() {
    let (m, files) = load_from(&k8s_dir().join("scale-out"));
    let listed: BTreeSet<&str> = m.kustomization.iter().map(String::as_str).collect();
    let present: BTreeSet<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| *f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "scale-out/kustomization.yaml resources");
    assert!(m.deployments.is_empty() && m.services.is_empty());
    let [ds] = m.daemon_sets.as_slice() else {
        panic!("one DaemonSet expected");
    };
    let spec = ds.spec.as_ref().unwrap();
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|md| md.labels.clone())
        .unwrap_or_default();
    let sel = spec.selector.match_labels.clone().unwrap_or_default();
    assert!(
        !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "the DaemonSet's selector does not match its pod labels"
    );
    let pod: &PodSpec = spec.template.spec.as_ref().unwrap();
    assert_eq!(
        pod.host_network,
        Some(true),
        "the hub's TAP joins a bridge of the node's network"
    );
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    let vhub = pod
        .containers
        .iter()
        .find(|c| c.name == "vhub")
        .expect("a container named vhub");
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_ne!(sc.privileged, Some(true), "{}", c.name);
        let caps = sc.capabilities.as_ref().unwrap();
        assert!(caps.drop.as_ref().unwrap().iter().any(|d| d == "ALL"));
        let add: Vec<&str> = caps.add.iter().flatten().map(String::as_str).collect();
        let want: &[&str] = if c.name == "vhub" {
            &["NET_ADMIN"]
        } else {
            &[]
        };
        assert_eq!(add, want, "{}: added capabilities", c.name);
    }
    // /dev/net/tun from the host, as a character device.
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    let mounts = vhub.volume_mounts.as_deref().unwrap_or_default();
    let tun = mounts
        .iter()
        .find(|mnt| mnt.mount_path == "/dev/net/tun")
        .expect("/dev/net/tun mounted");
    let host = volumes
        .iter()
        .find(|v| v.name == tun.name)
        .and_then(|v| v.host_path.as_ref())
        .expect("/dev/net/tun from a hostPath");
    assert_eq!(
        (host.path.as_str(), host.type_.as_deref()),
        ("/dev/net/tun", Some("CharDevice"))
    );
    // Every volume mounted exists; ConfigMaps are in this kustomization.
    for mnt in mounts {
        assert!(
            volumes.iter().any(|v| v.name == mnt.name),
            "no volume {}",
            mnt.name
        );
    }
    // The config: vhub's validator, a bridged hub, ports and paths.
    let args = vhub.args.as_deref().unwrap();
    let config_path = Path::new(&args[args.iter().position(|a| a == "--config").unwrap() + 1]);
    let mount = mounts
        .iter()
        .filter(|mnt| config_path.starts_with(&mnt.mount_path))
        .max_by_key(|mnt| mnt.mount_path.len())
        .expect("--config is mounted");
    let cm_name = volumes
        .iter()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.config_map.as_ref())
        .map(|c| c.name.clone())
        .expect("--config is on a ConfigMap volume");
    let cm = m
        .config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(cm_name.as_str()))
        .unwrap_or_else(|| panic!("ConfigMap {cm_name} is not in deploy/k8s/scale-out"));
    let key = config_path.file_name().unwrap().to_str().unwrap();
    let config = Config::from_toml_named(
        &cm.data.as_ref().unwrap()[key],
        "scale-out/configmap.yaml vhub.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        config.hub.iter().any(|h| h.bridge.is_some()),
        "no virtual hub is bridged to the node's VXLAN segment"
    );
    let port = |name: &str| resolve_port(vhub, &IntOrString::String(name.into()));
    assert_eq!(port("https"), Some(i32::from(config.listen.port())));
    let metrics = config.metrics_listen.expect("metrics on");
    assert_eq!(port("metrics"), Some(i32::from(metrics.port())));
    for probe in [&vhub.readiness_probe, &vhub.liveness_probe] {
        let get = probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap();
        assert_eq!(resolve_port(vhub, &get.port), port("https"));
    }
    assert!(
        is_under(&config.effective_cert_dir(), vhub),
        "cert_dir not mounted"
    );
    let admin = config.effective_admin_socket().expect("admin API on");
    assert!(
        is_under(admin.parent().unwrap(), vhub),
        "admin socket dir not mounted"
    );
    assert!(
        is_under(&config.effective_users_file(), vhub),
        "users_file not mounted"
    );
}
