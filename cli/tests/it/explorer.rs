//! The explorer as a user sees it: `cairn devnet --demo` with storage providers and a stored
//! file serves it, headless Chromium opens every dashboard page (and a provider's, a deal's
//! and a lease's), checks that it reads as an analyst would want it to, and saves a
//! screenshot of the whole page; `cairn stats` agrees.
//!
//! "Reads" means, on every page: the menu links every page; the visible text has no
//! field names (`snake_case`), no JSON and no long number without separators; a bar of a
//! value above zero is taller than 0 px. On the summary and revenue pages, tenant revenue
//! is drawn as tall as emission (its own panel), and the provider counts add up.

use super::cairn;
use super::webdriver::Session;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::devnet::free_port;

/// Storage providers in the devnet: one per shard of a 4+2 blob.
const STORAGE_PROVIDERS: u16 = 6;

/// A base port with `STORAGE_PROVIDERS` free ports after it, below the ephemeral range (an
/// outgoing connection could take one there before the providers bind it).
fn free_run() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut draw = u64::from(std::process::id()) << 32 | u64::from(nanos);
    for _ in 0..200 {
        draw = draw
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let base = 20_000 + u16::try_from((draw >> 33) % 12_000).unwrap();
        if (0..STORAGE_PROVIDERS)
            .all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
    panic!("no run of free ports");
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

/// The devnet's log, shown when the test fails.
fn log_tail(home: &Path) -> String {
    let log = std::fs::read_to_string(home.join("devnet-test.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Runs `cairn --home <home> <args>` until it succeeds (at most `tries` times) and returns
/// its JSON. The demo load signs with the `default` key too: a transaction of ours can lose
/// the race for its next nonce, and is then refused (nothing happened) and sent again.
fn cli_json(home: &Path, args: &[&str], tries: u32) -> Value {
    let mut last = String::new();
    for _ in 0..tries {
        let output = cairn()
            .arg("--home")
            .arg(home)
            .args(args)
            .output()
            .expect("run cairn");
        if output.status.success() {
            return serde_json::from_slice(&output.stdout)
                .unwrap_or_else(|e| panic!("cairn {args:?}: {e}"));
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("cairn {args:?}: {last}\n{}", log_tail(home));
}

/// Stores a file through the CLI: a storage deal for the deal pages and storage revenue.
/// The owner is a key of its own, funded by `default`, so the put races no one for nonces.
fn store_a_file(home: &Path) -> u64 {
    let key = cli_json(
        home,
        &["keys", "new", "owner", "--unencrypted-devnet", "--json"],
        1,
    );
    let address = key["address"].as_str().expect("an address").to_string();
    cli_json(
        home,
        &["account", "transfer", &address, "1000 CRN", "--json"],
        5,
    );
    let file = home.join("hello.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, data).expect("write the file");
    let path = file.to_str().expect("a UTF-8 path");
    let doc = cli_json(
        home,
        &[
            "store",
            "put",
            path,
            "--from",
            "owner",
            "--json",
            "--epochs",
            "50",
            "--redundancy",
            "4+2",
            // The default price (80% of the cheapest cloud GiB-month, per epoch) is 1 uCRN
            // per GiB-epoch on this test's 8 s epochs: a 300 kB deal would pay its six
            // holders nothing a chart could show. A price that pays them something.
            "--price",
            "0.1 CRN",
        ],
        1,
    );
    doc["deal"].as_u64().expect("a deal id")
}

/// What every page must pass, checked in the browser on the rendered page.
fn check_readable(session: &Session, page: &str) {
    for (href, name) in cairn_explorer::html::MENU {
        assert_eq!(
            session.count(&format!("header a[href=\"{href}\"]")),
            1,
            "{page}: the menu has no link to {name}"
        );
    }
    let found = session.script(
        r#"// Identifiers (hashes, addresses) are set in <code>: not figures to read.
        let text = document.body.innerText;
        for (const c of document.querySelectorAll('code')) text = text.split(c.innerText).join(' ');
        const bars = [...document.querySelectorAll('svg.chart rect.bar')];
        return {
          snake: text.match(/\b[a-z][a-z0-9]*_[a-z0-9_]+\b/g) || [],
          json: text.match(/\{"|":\s|\[\{/g) || [],
          bare_numbers: text.match(/(?<![\w.,:])\d{5,}(?![\w])/g) || [],
          flat_bars: bars.filter(b => {
            const box = b.getBBox();
            return +b.dataset.value > 0 && (box.width <= 0 || box.height <= 0);
          }).length,
        };"#,
    );
    for key in ["snake", "json", "bare_numbers"] {
        assert_eq!(
            found[key].as_array().map_or(0, Vec::len),
            0,
            "{page}: {key} in the page text: {}",
            found[key]
        );
    }
    assert_eq!(
        found["flat_bars"], 0,
        "{page}: bars of values above zero drawn 0 px"
    );
}

/// The tallest bar (px) of each named series in the page's charts.
fn tallest(session: &Session, series: &str) -> f64 {
    let script = format!(
        "return Math.max(0, ...[...document.querySelectorAll('svg.chart rect.bar[data-series=\"{series}\"]')].map(b => +b.getAttribute('height')));"
    );
    session.script(&script).as_f64().unwrap_or(0.0)
}

/// Tenant revenue beside emission: both visible, revenue not a sliver.
fn check_revenue_panels(session: &Session, page: &str) {
    let emission = tallest(session, "Emission (CRN minted)");
    let compute = tallest(session, "Compute revenue");
    assert!(emission > 20.0, "{page}: emission bars {emission} px");
    assert!(
        compute >= 0.3 * emission,
        "{page}: compute revenue {compute} px beside emission {emission} px"
    );
    assert!(
        tallest(session, "Storage revenue") > 20.0,
        "{page}: storage revenue bars are slivers"
    );
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
    let storage_base = free_run();
    let log = std::fs::File::create(home.path().join("devnet-test.log")).expect("devnet log");
    let _devnet = Killed(
        cairn()
            .arg("devnet")
            .args([
                "--demo",
                "--block-time-ms",
                "200",
                "--epoch-length-blocks",
                "40",
                "--storage-providers",
                &STORAGE_PROVIDERS.to_string(),
                "--storage-base-port",
                &storage_base.to_string(),
                // Timed audits have their own tests; on a loaded machine their verdicts are
                // timings, and this test is about pages.
                "--audited-shards-per-epoch",
                "0",
                "--no-gateway",
            ])
            .arg("--home")
            .arg(home.path())
            .args(["--api-port", &api.to_string()])
            .args(["--explorer-port", &explorer_port.to_string()])
            .args(["--p2p-base-port", &p2p.to_string()])
            .stdout(log.try_clone().map_or_else(|_| Stdio::null(), Stdio::from))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn cairn devnet"),
    );
    let explorer = format!("http://127.0.0.1:{explorer_port}");
    let node = format!("http://127.0.0.1:{api}");
    let start = Instant::now();
    while !(0..STORAGE_PROVIDERS).all(|i| {
        get_json(&format!(
            "http://127.0.0.1:{}/v1/provider",
            storage_base + i
        ))
        .is_some()
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the storage providers did not start\n{}",
            log_tail(home.path())
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let deal = store_a_file(home.path());
    // Wait for real activity: a running demo lease, the deal paid for a few epochs and six
    // finished epochs in all, so every figure and chart on the pages has something behind it.
    let start = Instant::now();
    let lease = loop {
        let summary = get_json(&format!("{explorer}/api/v1/summary"));
        let leases = get_json(&format!("{node}/v1/leases"));
        let lease = leases
            .as_ref()
            .and_then(|l| l["leases"][0]["lease"]["id"].as_u64());
        let paid_from = get_json(&format!("{node}/v1/deals/{deal}"))
            .and_then(|d| d["deal"]["start_epoch"].as_u64());
        if let (Some(s), Some(lease), Some(first_paid)) = (summary, lease, paid_from)
            && s["last_epoch"].as_u64() >= Some((first_paid + 2).max(5))
            && s["providers"]["proven"].as_u64() >= Some(1)
        {
            break lease;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the devnet showed no activity\n{}",
            log_tail(home.path())
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
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("screenshot dir");
    let mut pages: Vec<String> = cairn_explorer::server::PAGES
        .iter()
        .map(|p| p.to_string())
        .collect();
    // Every menu entry is among the pages opened.
    for (href, name) in cairn_explorer::html::MENU {
        assert!(
            pages.iter().any(|p| p.split('?').next() == Some(*href)),
            "{name} ({href}) is in the menu but not opened"
        );
    }
    pages.push(format!("/providers/{provider}"));
    pages.push(format!("/deals/{deal}"));
    pages.push(format!("/leases/{lease}"));
    for page in &pages {
        session.navigate(&format!("{explorer}{page}"));
        assert!(
            session.title().contains("Cairn explorer"),
            "{page}: title {:?}",
            session.title()
        );
        assert_eq!(session.count("p.error"), 0, "{page}: an error page");
        let charts = session.count("svg.chart");
        assert!(charts >= 1, "{page}: no chart");
        assert!(
            session.count("svg.chart rect") > charts,
            "{page}: charts without shapes"
        );
        check_readable(&session, page);
        if page == "/" || page.starts_with("/revenue") {
            check_revenue_panels(&session, page);
        }
        session.fit_window_to_page(9_000);
        let png = session.screenshot();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{page}: not a PNG");
        let name: String = page
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        std::fs::write(out.join(format!("page{name}.png")), &png).expect("save screenshot");
    }
    eprintln!("screenshots in {}", out.display());

    // Page by page, what the old pages got wrong.
    session.navigate(&format!("{explorer}/"));
    assert_eq!(
        session.count("svg.chart[aria-label=\"Providers by epoch\"] polyline"),
        3,
        "the summary has no provider-growth chart"
    );
    let cards = session.script(
        "return [...document.querySelectorAll('.card')].map(c => [c.querySelector('.label').innerText, c.querySelector('b').innerText, c.querySelector('.muted').innerText]);",
    );
    let card = |label: &str| -> (String, String) {
        let found = cards
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c[0].as_str().is_some_and(|l| l.starts_with(label)))
            .unwrap_or_else(|| panic!("no card {label:?}: {cards}"));
        (
            found[1].as_str().unwrap_or("").to_string(),
            found[2].as_str().unwrap_or("").to_string(),
        )
    };
    let (tvl, tvl_note) = card("Total value locked");
    assert!(
        tvl.ends_with(" CRN") && tvl.contains(','),
        "TVL without separators or unit: {tvl:?}"
    );
    assert!(tvl_note.contains('$'), "TVL without USD: {tvl_note:?}");
    let (height, _) = card("Finalized height");
    assert!(
        height.chars().all(|c| c.is_ascii_digit() || c == ','),
        "{height:?}"
    );
    let (revenue, _) = card("Tenant revenue");
    assert!(revenue.ends_with(" CRN"), "{revenue:?}");
    let (ratio, _) = card("Revenue ÷ emission");
    assert!(ratio.ends_with('%'), "{ratio:?}");
    // "Proven 7 beside active 6": the counts are labelled and split so that they add up.
    let summary = get_json(&format!("{explorer}/api/v1/summary")).expect("summary");
    let p = &summary["providers"];
    let split = &p["breakdown"];
    let n = |v: &Value| {
        v.as_u64()
            .unwrap_or_else(|| panic!("not a count: {summary}"))
    };
    assert_eq!(
        n(&p["proven"]),
        n(&split["passed_every_proof"]) + n(&split["on_standing_compute_rate"]),
        "{summary}"
    );
    assert_eq!(
        n(&p["active"]),
        n(&split["passed_every_proof"]) + n(&split["passed_and_faulted"]),
        "{summary}"
    );
    let (proven, proven_note) = card("Proven providers");
    let (active, active_note) = card("Providers that passed a proof");
    assert!(
        proven_note.contains("passed every proof") && active_note.contains("passed every proof"),
        "proven {proven} ({proven_note}) beside active {active} ({active_note}) say not why"
    );
    if n(&split["on_standing_compute_rate"]) > 0 {
        assert!(
            proven_note.contains("between compute challenges"),
            "{proven_note}"
        );
    }

    // The deal and lease pages are tables of fields, and the deal's shards a table of holders.
    session.navigate(&format!("{explorer}/deals/{deal}"));
    let shard_rows = session.script(
        "const h = [...document.querySelectorAll('h2')].find(h => h.innerText.startsWith('Shards'));
         return h ? h.nextElementSibling.querySelectorAll('tr').length - 1 : -1;",
    );
    assert_eq!(shard_rows, 6, "a 4+2 deal has six shard rows");
    assert!(session.count("table.fields tr") >= 10, "deal fields");
    session.navigate(&format!("{explorer}/leases/{lease}"));
    assert!(session.count("table.fields tr") >= 10, "lease fields");
    session.navigate(&format!("{explorer}/deals"));
    assert_eq!(
        session.count(&format!("table a[href=\"/deals/{deal}\"]")),
        1,
        "the deals list links the deal"
    );
    session.navigate(&format!("{explorer}/leases"));
    assert!(
        session.count(&format!("table a[href=\"/leases/{lease}\"]")) == 1,
        "the leases list links the lease"
    );

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
        .args(["stats", "--json", "--node", &node, "--home"])
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
