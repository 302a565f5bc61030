//! The explorer as a user sees it: `cairn devnet --demo` serves it, headless Chromium opens
//! every dashboard page, finds its SVG charts and saves a screenshot; `cairn stats` agrees.

use super::cairn;
use super::webdriver::Session;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find(names: &[&str]) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
}

fn get_json(url: &str) -> Option<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent.get(url).call().ok()?.body_mut().read_json().ok()
}

#[test]
fn slow_browser_opens_every_dashboard_page_and_finds_its_charts() {
    let (Some(chromium), Some(driver)) = (
        find(&["chromium", "chromium-browser"]),
        find(&["chromedriver"]),
    ) else {
        match std::env::var("CAIRN_NO_CHROMIUM") {
            Ok(reason) => {
                eprintln!(
                    "SKIPPED slow_browser_opens_every_dashboard_page_and_finds_its_charts: {reason}"
                );
                return;
            }
            Err(_) => panic!(
                "chromium and chromedriver are not installed: run ./scripts/test.sh (it installs them) or apt-get install chromium chromium-driver"
            ),
        }
    };
    let home = tempfile::tempdir().expect("home");
    let (api, explorer_port, p2p) = (free_port(), free_port(), free_port());
    let _devnet = Killed(
        cairn()
            .arg("devnet")
            .args([
                "--demo",
                "--block-time-ms",
                "200",
                "--epoch-length-blocks",
                "40",
                // Storage has its own tests; its fixed ports would only collide here.
                "--storage-providers",
                "0",
                "--no-gateway",
            ])
            .arg("--home")
            .arg(home.path())
            .args(["--api-port", &api.to_string()])
            .args(["--explorer-port", &explorer_port.to_string()])
            .args(["--p2p-base-port", &p2p.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cairn devnet"),
    );
    let explorer = format!("http://127.0.0.1:{explorer_port}");
    // Wait for real activity: two finished epochs, a running demo lease and the devnet's
    // compute prover proven, so every figure on the pages has something behind it.
    let start = Instant::now();
    let lease = loop {
        let summary = get_json(&format!("{explorer}/api/v1/summary"));
        let leases = get_json(&format!("http://127.0.0.1:{api}/v1/leases"));
        let lease = leases
            .as_ref()
            .and_then(|l| l["leases"][0]["lease"]["id"].as_u64());
        if let (Some(s), Some(lease)) = (summary, lease)
            && s["last_epoch"].as_u64() >= Some(1)
            && s["providers"]["proven"].as_u64() >= Some(1)
        {
            break lease;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the devnet showed no activity"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let providers = get_json(&format!("{explorer}/api/v1/providers")).expect("providers");
    let provider = providers["providers"][0]["provider"]["address"]
        .as_str()
        .expect("a provider")
        .to_string();

    let driver_port = free_port();
    let _driver = Killed(
        Command::new(&driver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver"),
    );
    let base = format!("http://127.0.0.1:{driver_port}");
    let start = Instant::now();
    while get_json(&format!("{base}/status")).is_none_or(|s| s["value"]["ready"] != true) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let session = Session::new(&base, &chromium);
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer-screenshots");
    std::fs::create_dir_all(&out).expect("screenshot dir");
    let mut pages: Vec<String> = cairn_explorer::server::PAGES
        .iter()
        .map(|p| p.to_string())
        .collect();
    pages.push(format!("/providers/{provider}"));
    pages.push(format!("/leases/{lease}"));
    for page in &pages {
        session.navigate(&format!("{explorer}{page}"));
        assert!(
            session.title().contains("Cairn explorer"),
            "{page}: title {:?}",
            session.title()
        );
        let charts = session.count("svg.chart");
        assert!(charts >= 1, "{page}: no chart");
        assert!(
            session.count("svg.chart rect") > charts,
            "{page}: charts without shapes"
        );
        let png = session.screenshot();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{page}: not a PNG");
        let name: String = page
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        std::fs::write(out.join(format!("page{name}.png")), &png).expect("save screenshot");
    }
    eprintln!("screenshots in {}", out.display());
    // The summary the browser showed is the one `cairn stats` prints.
    let output = cairn()
        .args(["stats", "--json", "--explorer", &explorer])
        .output()
        .expect("cairn stats");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stats: Value = serde_json::from_slice(&output.stdout).expect("stats JSON");
    assert!(stats["height"].as_u64() >= Some(80), "{stats}");
    assert!(stats["tvl"]["crn"].is_string(), "{stats}");
    let output = cairn()
        .args([
            "stats",
            "--json",
            "--node",
            &format!("http://127.0.0.1:{api}"),
            "--home",
        ])
        .arg(home.path().join("elsewhere"))
        .output()
        .expect("cairn stats from the node");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stats: Value = serde_json::from_slice(&output.stdout).expect("stats JSON");
    assert!(stats["last_epoch"].as_u64() >= Some(1), "{stats}");
}
