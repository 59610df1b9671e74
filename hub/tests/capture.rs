//! `vhub ctl capture` against a running `vhub`: the pcapng stream is read
//! by the real `tcpdump -r -` through a pipe, BPF and session filters keep
//! what they should, and a reader that stalls loses capture frames
//! (counted) while the hub's own frames all arrive.

mod common;

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{have, http_get, metric, Vhub};
use vhub_bench::client::{mac, TestClient, BROADCAST};

const T: Duration = Duration::from_secs(20);

const CONFIG: &str = "cert_dir = \"state\"\n\
    [session]\ntimeout = \"300s\"\n\
    [[hub]]\nname = \"lab\"\nanonymous = true\n";

fn connect(addr: std::net::SocketAddr) -> TestClient {
    let config = switch_core::session::SessionConfig {
        timeout: Duration::from_secs(300),
        ..Default::default()
    };
    TestClient::connect_with(
        addr,
        "lab",
        None,
        config,
        &certs::tls::TlsOptions::default(),
    )
    .expect("connects")
}

fn ip(last: u8) -> [u8; 4] {
    [10, 9, 0, last]
}

/// An ARP request (`reply == false`, broadcast) or reply from host `me`.
fn arp(me: u8, peer: u8, reply: bool) -> Vec<u8> {
    let dst = if reply { mac(peer) } else { BROADCAST };
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&mac(me));
    f.extend_from_slice(&[
        0x08,
        0x06,
        0,
        1,
        0x08,
        0x00,
        6,
        4,
        0,
        if reply { 2 } else { 1 },
    ]);
    f.extend_from_slice(&mac(me));
    f.extend_from_slice(&ip(me));
    f.extend_from_slice(&if reply { mac(peer) } else { [0; 6] });
    f.extend_from_slice(&ip(peer));
    f.resize(60, 0);
    f
}

/// An ICMP echo request (or reply) from host `me` to host `peer`.
fn icmp(me: u8, peer: u8, reply: bool) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&mac(peer));
    f.extend_from_slice(&mac(me));
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip_hdr = [0u8; 20];
    ip_hdr[0] = 0x45;
    ip_hdr[2..4].copy_from_slice(&(20u16 + 16).to_be_bytes());
    ip_hdr[8] = 64;
    ip_hdr[9] = 1;
    ip_hdr[12..16].copy_from_slice(&ip(me));
    ip_hdr[16..20].copy_from_slice(&ip(peer));
    let c = checksum(&ip_hdr);
    ip_hdr[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip_hdr);
    let mut icmp = [0u8; 16];
    icmp[0] = if reply { 0 } else { 8 };
    icmp[4..6].copy_from_slice(&7u16.to_be_bytes());
    icmp[6..8].copy_from_slice(&1u16.to_be_bytes());
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&icmp);
    f
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `from` sends `f`; `to` must receive it.
fn passes(from: &mut TestClient, to: &mut TestClient, f: &[u8]) {
    let before = to.received.len();
    from.send(f);
    from.pump().unwrap();
    let deadline = Instant::now() + T;
    while !to.received[before..].iter().any(|r| r == f) {
        assert!(Instant::now() < deadline, "frame not received");
        to.pump().unwrap();
    }
}

/// A running hub with anonymous virtual hub `lab` and its admin socket.
fn start(dir: &Path) -> (Vhub, String) {
    let config = dir.join("vhub.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut hub = Vhub::spawn(&["--config", config.to_str().unwrap(), "--shards", "2"]);
    hub.wait_ready();
    let socket = dir.join("state/admin.sock").to_str().unwrap().to_owned();
    (hub, socket)
}

/// Waits until the hub logged its `n`th "capture started".
fn wait_started(hub: &Vhub, n: usize) {
    let deadline = Instant::now() + T;
    while hub.log().matches("capture started").count() < n {
        assert!(
            Instant::now() < deadline,
            "capture did not start:\n{}",
            hub.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `vhub ctl capture ARGS | tee FILE | tcpdump -r - -n -e`, started in
/// the background: the shell, whose stdout is tcpdump's.
fn capture_into_tcpdump(socket: &str, args: &str, file: &Path) -> std::process::Child {
    let cmd = format!(
        "'{}' ctl --socket '{socket}' capture {args} | tee '{}' | tcpdump -r - -n -e 2>&1",
        env!("CARGO_BIN_EXE_vhub"),
        file.display()
    );
    Command::new("sh")
        .args(["-c", &cmd])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh")
}

fn finish(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "capture | tcpdump failed: {text}");
    text
}

/// The interface names (`if_name`) of a pcapng file, in order.
fn interface_names(file: &Path) -> Vec<String> {
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
    use pcap_file::pcapng::{Block, PcapNgReader};
    let mut r = PcapNgReader::new(std::fs::File::open(file).unwrap()).unwrap();
    let mut names = Vec::new();
    while let Some(b) = r.next_block() {
        if let Block::InterfaceDescription(i) = b.unwrap() {
            for o in i.options {
                if let InterfaceDescriptionOption::IfName(n) = o {
                    names.push(n.into_owned());
                }
            }
        }
    }
    names
}

fn session_ids(socket: &str) -> Vec<String> {
    let (code, out, err) = common::vhub(&["ctl", "--socket", socket, "--json", "sessions"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn capture_is_read_by_tcpdump_and_filters_select() {
    if !have("tcpdump") {
        test_support::skip_or_fail("capture_is_read_by_tcpdump", "tcpdump is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (hub, socket) = start(dir.path());
    let mut a = connect(hub.listen);
    let mut b = connect(hub.listen);
    let mut c = connect(hub.listen);

    // Everything: an ARP exchange and a ping, as tcpdump shows them.
    let file = dir.path().join("all.pcapng");
    let all = capture_into_tcpdump(&socket, "lab --count 4", &file);
    wait_started(&hub, 1);
    passes(&mut a, &mut b, &arp(1, 2, false));
    passes(&mut b, &mut a, &arp(2, 1, true));
    passes(&mut a, &mut b, &icmp(1, 2, false));
    passes(&mut b, &mut a, &icmp(2, 1, true));
    let text = finish(all);
    println!("{text}");
    assert!(
        text.contains("Request who-has 10.9.0.2 tell 10.9.0.1"),
        "{text}"
    );
    assert!(
        text.contains("Reply 10.9.0.2 is-at 02:00:00:00:00:02"),
        "{text}"
    );
    assert!(
        text.contains("10.9.0.1 > 10.9.0.2: ICMP echo request"),
        "{text}"
    );
    assert!(
        text.contains("10.9.0.2 > 10.9.0.1: ICMP echo reply"),
        "{text}"
    );
    // One pcapng interface per session, named by its id.
    let names = interface_names(&file);
    let ids = session_ids(&socket);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|n| ids.contains(n)),
        "{names:?} vs {ids:?}"
    );

    // A BPF filter: only the ICMP frames, not the ARP ones before them.
    let file = dir.path().join("icmp.pcapng");
    let only_icmp = capture_into_tcpdump(&socket, "lab --count 2 --filter 'icmp'", &file);
    wait_started(&hub, 2);
    passes(&mut a, &mut b, &arp(1, 2, false));
    passes(&mut b, &mut a, &arp(2, 1, true));
    passes(&mut a, &mut b, &icmp(1, 2, false));
    passes(&mut b, &mut a, &icmp(2, 1, true));
    let text = finish(only_icmp);
    assert!(
        !text.contains("ARP"),
        "the icmp filter let ARP through: {text}"
    );
    assert_eq!(text.matches("ICMP echo").count(), 2, "{text}");

    // A session filter: c's own traffic (unicast to it and from it, and
    // floods), not a ↔ b unicast.
    let c_id = {
        let before = session_ids(&socket);
        // c has not sent yet: the one id that has no MAC is c's. Find it by
        // sending from c and asking the MAC table instead.
        passes(&mut c, &mut a, &arp(3, 1, false));
        let (code, out, _) = common::vhub(&["ctl", "--socket", &socket, "--json", "macs"]);
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let id = v["macs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mac"] == "02:00:00:00:00:03")
            .map(|m| m["session"].as_str().unwrap().to_owned())
            .expect("c's MAC learned");
        assert!(before.contains(&id));
        id
    };
    let file = dir.path().join("c.pcapng");
    let of_c = capture_into_tcpdump(&socket, &format!("lab --count 2 --session {c_id}"), &file);
    wait_started(&hub, 3);
    passes(&mut a, &mut b, &icmp(1, 2, false)); // not c's
    passes(&mut b, &mut a, &icmp(2, 1, true)); // not c's
    passes(&mut a, &mut c, &icmp(1, 3, false));
    passes(&mut c, &mut a, &icmp(3, 1, true));
    let text = finish(of_c);
    assert!(
        !text.contains("10.9.0.2"),
        "a ↔ b in a capture of c: {text}"
    );
    assert!(
        text.contains("10.9.0.1 > 10.9.0.3: ICMP echo request"),
        "{text}"
    );
    assert!(
        text.contains("10.9.0.3 > 10.9.0.1: ICMP echo reply"),
        "{text}"
    );

    // Clear errors, exit 1, nothing on stdout.
    for (args, want) in [
        (vec!["capture", "nosuch"], "no virtual hub"),
        (
            vec!["capture", "lab", "--filter", "tcp port nonsense"],
            "bad filter",
        ),
        (
            vec!["capture", "lab", "--session", "ffffffff"],
            "no session",
        ),
    ] {
        let mut all = vec!["ctl", "--socket", &socket];
        all.extend(args.iter().copied());
        let (code, out, err) = common::vhub(&all);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?} wrote to stdout: {out}");
    }
    let text = http_get(hub.metrics, "/metrics", &[]).2;
    assert_eq!(
        metric(&text, "vhub_capture_frames_total{result=\"written\"}"),
        8.0
    );
}

#[test]
fn a_stalled_reader_loses_capture_frames_never_hub_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, socket) = start(dir.path());
    let mut a = connect(hub.listen);
    let mut b = connect(hub.listen);
    passes(&mut a, &mut b, &arp(1, 2, false));
    passes(&mut b, &mut a, &arp(2, 1, true));

    // A reader that never reads: its pipe and socket fill, then the queue.
    let mut stalled = Command::new(env!("CARGO_BIN_EXE_vhub"))
        .args(["ctl", "--socket", &socket, "capture", "lab"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_started(&hub, 1);

    // In rounds, b reading each round before the next: the receiver keeps
    // up (its own ring never overflows), so any hub drop would be the
    // capture's fault. The capture's reader does not read at all.
    const N: usize = 20_000;
    const ROUND: usize = 500;
    let deadline = Instant::now() + Duration::from_secs(120);
    for round in 1..=N / ROUND {
        let sent = common::send_many(&mut a, (0..ROUND).map(|_| icmp(1, 2, false)));
        assert_eq!(sent, ROUND);
        while b.received.len() < round * ROUND + 1 && Instant::now() < deadline {
            b.pump().unwrap();
        }
    }
    let text = http_get(hub.metrics, "/metrics", &[]).2;
    let dropped = metric(&text, "vhub_capture_frames_total{result=\"dropped\"}");
    let written = metric(&text, "vhub_capture_frames_total{result=\"written\"}");
    println!(
        "capture: {written} written, {dropped} dropped of {N}; b got {}",
        b.received.len() - 1
    );
    assert_eq!(
        b.received.len(),
        N + 1,
        "the hub lost frames to a stalled capture"
    );
    for reason in ["queue_full", "memory", "handoff_full", "stale_port"] {
        let series = format!("vhub_frames_dropped_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&text, &series), 0.0, "{series}");
    }
    assert!(dropped > 0.0, "a stalled reader lost nothing? {text}");

    // The reader goes away: the capture ends and is removed.
    let mut pipe = stalled.stdout.take().unwrap();
    let mut head = [0u8; 4];
    pipe.read_exact(&mut head).unwrap();
    assert_eq!(
        head,
        [0x0a, 0x0d, 0x0d, 0x0a],
        "not a pcapng section header"
    );
    stalled.kill().unwrap();
    stalled.wait().unwrap();
    drop(pipe);
    let deadline = Instant::now() + T;
    while !hub.log().contains("capture ended") {
        assert!(
            Instant::now() < deadline,
            "capture not ended:\n{}",
            hub.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
