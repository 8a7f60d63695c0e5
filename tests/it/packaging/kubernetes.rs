//! The Kubernetes manifests under contrib/kubernetes/: they parse (PyYAML),
//! wire threads, probes and the mesh, and run only options the binaries have.

use super::*;

/// The first python3 that has PyYAML (Debian's python3-yaml), if any.
fn python_with_yaml() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import yaml"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn the_kubernetes_manifests_parse_and_wire_threads_and_probes() {
    let Some(python) = python_with_yaml() else {
        return skip(
            "no python3 with PyYAML (package python3-yaml): the manifests were not parsed",
        );
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    // PyYAML parses (a syntax error fails here); serde_json checks the shape.
    let script = "import json, sys, yaml\n\
                  print(json.dumps([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f))]))";
    let mut args = vec!["-c", script];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let docs: Vec<serde_json::Value> = serde_json::from_slice(&run(python, &args).stdout).unwrap();
    let named = |k: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == k && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {k} {name} in {files:?}"))
    };
    let container = &named("Deployment", "udp-echo")["spec"]["template"]["spec"]["containers"][0];
    let args = container["args"].to_string();
    assert!(args.contains("--threads=$(THREADS)"), "{args}");
    assert_eq!(
        container["env"][0]["valueFrom"]["resourceFieldRef"]["resource"],
        "limits.cpu"
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            container[probe]["exec"]["command"][0], "udp-echo-client",
            "{probe}"
        );
    }
    let port = &named("Service", "udp-echo")["spec"]["ports"][0];
    assert_eq!(
        (port["protocol"].as_str(), port["port"].as_u64()),
        (Some("UDP"), Some(7))
    );
    the_mesh_is_wired(&docs);
    every_container_runs_options_the_binaries_have(&docs);
}

/// contrib/kubernetes/mesh.yaml: the prober finds the pods through the
/// headless Service's name and echo port, and labels its series with the
/// node from the downward API.
fn the_mesh_is_wired(docs: &[serde_json::Value]) {
    let service = docs
        .iter()
        .find(|d| d["kind"] == "Service" && d["spec"]["clusterIP"] == "None")
        .expect("a headless Service for the mesh");
    let name = service["metadata"]["name"].as_str().unwrap();
    let echo = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["protocol"] == "UDP")
        .expect("the mesh Service's UDP port");
    let daemonset = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet for the mesh");
    let pod = &daemonset["spec"]["template"];
    assert_eq!(
        service["spec"]["selector"], pod["metadata"]["labels"],
        "the Service selects the DaemonSet's pods"
    );
    let containers = pod["spec"]["containers"].as_array().unwrap();
    let by_command = |program: &str| {
        containers
            .iter()
            .find(|c| c["command"][0] == program)
            .unwrap_or_else(|| panic!("no container runs {program}"))
    };
    let (server, prober) = (by_command("udp-echo-server"), by_command("udp-echo-client"));
    let args = |c: &serde_json::Value| -> Vec<String> {
        c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    };
    let port = echo["port"].as_u64().unwrap();
    assert!(
        args(server).contains(&format!("--port={port}")),
        "{:?}",
        args(server)
    );
    let want = format!("--targets=dns+a:{name}.$(POD_NAMESPACE).svc.cluster.local:{port}");
    assert!(args(prober).contains(&want), "{want} in {:?}", args(prober));
    assert!(args(prober).contains(&"--label=source_node=$(NODE_NAME)".to_owned()));
    let env = prober["env"].as_array().unwrap();
    let field = |var: &str| {
        env.iter()
            .find(|e| e["name"] == var)
            .unwrap_or_else(|| panic!("no {var} in the prober's env"))["valueFrom"]["fieldRef"]
            ["fieldPath"]
            .clone()
    };
    assert_eq!(field("NODE_NAME"), "spec.nodeName");
    assert_eq!(field("POD_NAMESPACE"), "metadata.namespace");
    for c in containers {
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{}",
            c["name"]
        );
    }
}

/// Every option a manifest passes is one the binary's `--help` lists, and
/// every container runs the one image the Containerfile says it builds.
fn every_container_runs_options_the_binaries_have(docs: &[serde_json::Value]) {
    let help = |binary: &str| String::from_utf8(run(binary, &["--help"]).stdout).unwrap();
    let (server_help, client_help) = (help(SERVER), help(CLIENT));
    let containerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Containerfile")).unwrap();
    let mut seen = 0;
    for doc in docs {
        let Some(containers) = doc["spec"]["template"]["spec"]["containers"].as_array() else {
            continue;
        };
        for c in containers {
            let image = c["image"].as_str().unwrap();
            assert!(
                containerfile.contains(&format!("-t {image} ")),
                "{image}: not the name the Containerfile builds"
            );
            // The image's entry point is the server: a container without a
            // command runs it.
            let program = c["command"][0].as_str().unwrap_or("udp-echo-server");
            let help = if program == "udp-echo-client" {
                &client_help
            } else {
                &server_help
            };
            for arg in c["args"].as_array().into_iter().flatten() {
                let arg = arg.as_str().unwrap();
                let flag = arg.split('=').next().unwrap();
                if flag.starts_with("--") {
                    assert!(
                        help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                        "{program} has no {flag} ({arg}, in {})",
                        c["name"]
                    );
                    seen += 1;
                }
            }
        }
    }
    assert!(seen >= 10, "only {seen} options checked");
}
