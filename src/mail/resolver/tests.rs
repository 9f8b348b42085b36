//! Lookups against a scripted DNS responder on loopback.

use super::*;
use mio::{Events, Poll};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

pub(crate) const T_A: u16 = 1;
pub(crate) const T_PTR: u16 = 12;
const T_AAAA: u16 = 28;

#[derive(Clone, Debug)]
pub(crate) enum Reply {
    Ptr(&'static str),
    A(Vec<Ipv4Addr>),
    Aaaa(Vec<Ipv6Addr>),
    Rcode(u8),
    Silent,
}

/// A UDP DNS server answering from a script keyed by (name, type). A name
/// that is in the script gets an empty NOERROR for types it has no entry
/// for; any other name gets NXDOMAIN.
pub(crate) struct Responder {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    queries: Arc<Mutex<Vec<(String, u16)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    pub(crate) fn start(bind: &str, script: Vec<(&str, u16, Reply)>) -> io::Result<Responder> {
        let socket = UdpSocket::bind(bind)?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let script: HashMap<(String, u16), Reply> = script
            .into_iter()
            .map(|(n, t, r)| ((n.to_ascii_lowercase(), t), r))
            .collect();
        let (stop2, queries2) = (Arc::clone(&stop), Arc::clone(&queries));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Some((name, qtype, question_end)) = parse_query(&buf[..n]) else {
                    continue;
                };
                queries2.lock().unwrap().push((name.clone(), qtype));
                let known = script.keys().any(|(k, _)| *k == name);
                let reply = match script.get(&(name, qtype)) {
                    Some(reply) => reply.clone(),
                    None if known => Reply::A(Vec::new()),
                    None => Reply::Rcode(3),
                };
                if let Some(packet) = answer(&buf[..question_end], &reply) {
                    let _ = socket.send_to(&packet, peer);
                }
            }
        });
        Ok(Responder {
            addr,
            stop,
            queries,
            thread: Some(thread),
        })
    }

    fn queries(&self) -> Vec<(String, u16)> {
        self.queries.lock().unwrap().clone()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// (lower-case name, type, end of the question section).
fn parse_query(q: &[u8]) -> Option<(String, u16, usize)> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

fn answer(query: &[u8], reply: &Reply) -> Option<Vec<u8>> {
    let mut rdatas: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut rcode = 0u8;
    match reply {
        Reply::Silent => return None,
        Reply::Rcode(c) => rcode = *c,
        Reply::Ptr(name) => {
            let mut r = Vec::new();
            encode_name(name, &mut r);
            rdatas.push((T_PTR, r));
        }
        Reply::A(list) => rdatas.extend(list.iter().map(|a| (T_A, a.octets().to_vec()))),
        Reply::Aaaa(list) => rdatas.extend(list.iter().map(|a| (T_AAAA, a.octets().to_vec()))),
    }
    let mut p = Vec::with_capacity(512);
    p.extend_from_slice(&query[..2]);
    p.extend_from_slice(&[0x81, 0x80 | rcode]);
    p.extend_from_slice(&[0, 1]);
    p.extend_from_slice(&(rdatas.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&query[12..]);
    for (rtype, rdata) in rdatas {
        p.extend_from_slice(&[0xc0, 0x0c]);
        p.extend_from_slice(&rtype.to_be_bytes());
        p.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]);
        p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        p.extend_from_slice(&rdata);
    }
    Some(p)
}

fn resolver(server: SocketAddr) -> Resolver {
    Resolver {
        servers: vec![server],
        valid: None,
        ipv4: true,
        ipv6: true,
    }
}

/// Drive a lookup over a mio poll as a session would.
fn drive(mut lookup: HostLookup) -> (Outcome, Vec<LogLine>) {
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    let token = Token(7);
    lookup.apply_interest(&(poll.registry(), token)).unwrap();
    assert!(lookup.watched().count() > 0, "a socket to watch");
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        let now = Instant::now();
        assert!(now < give_up, "lookup never finished");
        let deadline = lookup.next_deadline(now).expect("a deadline while running");
        poll.poll(&mut events, Some(deadline.saturating_duration_since(now)))
            .unwrap();
        let now = Instant::now();
        let outcome = if events.iter().any(|e| e.token() == token) {
            lookup.on_ready(now)
        } else if now >= deadline {
            lookup.on_timeout(now)
        } else {
            None
        };
        lookup.apply_interest(&(poll.registry(), token)).unwrap();
        if let Some(outcome) = outcome {
            assert_eq!(lookup.next_deadline(Instant::now()), None);
            return (outcome, lookup.take_log());
        }
    }
}

fn lookup(server: &Responder, client: IpAddr, timeout: Duration) -> HostLookup {
    let conf = resolver(server.addr);
    started(HostLookup::start(
        &conf,
        new_cache(&conf),
        timeout,
        client,
        Instant::now(),
    ))
}

/// A lookup that has to ask DNS (nothing is cached).
fn started(r: io::Result<(HostLookup, Option<Outcome>)>) -> HostLookup {
    let (lookup, outcome) = r.unwrap();
    assert_eq!(outcome, None, "answered from an empty cache");
    lookup
}

fn errors(log: &[LogLine]) -> Vec<(&'static str, String)> {
    log.iter()
        .filter(|l| l.level == Level::Error)
        .map(|l| (l.action, l.text.clone()))
        .collect()
}

/// A DNS server that names 127.0.0.1 mail.example.test and confirms it
/// with an A record.
fn mail_example_dns() -> Responder {
    Responder::start(
        "127.0.0.1:0",
        vec![
            (PTR4, T_PTR, Reply::Ptr("mail.example.test")),
            (
                "mail.example.test",
                T_A,
                Reply::A(vec![Ipv4Addr::LOCALHOST]),
            ),
        ],
    )
    .unwrap()
}

const LOCAL4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PTR4: &str = "1.0.0.127.in-addr.arpa";
const SECOND: Duration = Duration::from_secs(1);

#[test]
fn found_when_forward_lookup_confirms() {
    let dns = Responder::start(
        "127.0.0.1:0",
        vec![
            (PTR4, T_PTR, Reply::Ptr("mail.example.test")),
            (
                "mail.example.test",
                T_A,
                Reply::A(vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::LOCALHOST]),
            ),
        ],
    )
    .unwrap();
    let (outcome, log) = drive(lookup(&dns, LOCAL4, 5 * SECOND));
    assert_eq!(outcome, Outcome::Found("mail.example.test".into()));
    assert_eq!(outcome.host_text(), "mail.example.test");
    assert!(errors(&log).is_empty(), "{log:?}");
    assert!(log.contains(&LogLine {
        level: Level::Debug,
        action: ACTION_HOSTNAME,
        text: "address resolved: mail.example.test".into()
    }));
    assert!(log
        .iter()
        .any(|l| l.text == "name was resolved to 127.0.0.1"));
    let asked = dns.queries();
    assert!(asked.contains(&(PTR4.into(), T_PTR)));
    assert!(asked.contains(&("mail.example.test".into(), T_A)));
    assert!(asked.contains(&("mail.example.test".into(), T_AAAA)));
}

#[test]
fn nxdomain_ptr_is_unavailable() {
    let dns = Responder::start("127.0.0.1:0", vec![]).unwrap();
    let (outcome, log) = drive(lookup(&dns, LOCAL4, 5 * SECOND));
    assert_eq!(outcome, Outcome::NotFound);
    assert_eq!(outcome.host_text(), "[UNAVAILABLE]");
    assert_eq!(
        errors(&log),
        vec![(
            ACTION_ADDRESS,
            "127.0.0.1 could not be resolved (3: Host not found)".to_string()
        )]
    );
}

#[test]
fn empty_ptr_answer_is_host_not_found() {
    // The name exists but has no PTR record: nginx treats "no answers" as
    // NXDOMAIN.
    let dns = Responder::start("127.0.0.1:0", vec![(PTR4, T_A, Reply::A(vec![]))]).unwrap();
    let (outcome, log) = drive(lookup(&dns, LOCAL4, 5 * SECOND));
    assert_eq!(outcome, Outcome::NotFound);
    assert_eq!(
        errors(&log)[0].1,
        "127.0.0.1 could not be resolved (3: Host not found)"
    );
}

#[test]
fn forward_mismatch_is_unavailable_without_error() {
    let dns = Responder::start(
        "127.0.0.1:0",
        vec![
            (PTR4, T_PTR, Reply::Ptr("spoofed.example.test")),
            (
                "spoofed.example.test",
                T_A,
                Reply::A(vec![Ipv4Addr::new(192, 0, 2, 9)]),
            ),
            (
                "spoofed.example.test",
                T_AAAA,
                Reply::Aaaa(vec![Ipv6Addr::LOCALHOST]),
            ),
        ],
    )
    .unwrap();
    let (outcome, log) = drive(lookup(&dns, LOCAL4, 5 * SECOND));
    assert_eq!(outcome, Outcome::NotFound);
    assert!(errors(&log).is_empty(), "{log:?}");
    // Both families were compared: an IPv6 ::1 does not match 127.0.0.1.
    assert!(log.iter().any(|l| l.text == "name was resolved to ::1"));
}

#[test]
fn forward_nxdomain_logs_the_name() {
    let dns = Responder::start(
        "127.0.0.1:0",
        vec![(PTR4, T_PTR, Reply::Ptr("gone.example.test"))],
    )
    .unwrap();
    let (outcome, log) = drive(lookup(&dns, LOCAL4, 5 * SECOND));
    assert_eq!(outcome, Outcome::NotFound);
    assert_eq!(
        errors(&log),
        vec![(
            ACTION_HOSTNAME,
            "\"gone.example.test\" could not be resolved (3: Host not found)".to_string()
        )]
    );
}

#[test]
fn forward_without_addresses_is_host_not_found() {
    let dns = Responder::start(
        "127.0.0.1:0",
        vec![
            (PTR4, T_PTR, Reply::Ptr("noaddr.example.test")),
            ("noaddr.example.test", T_A, Reply::A(vec![])),
        ],
    )
    .unwrap();
    let (outcome, log) = drive(lookup(&dns, LOCAL4, 5 * SECOND));
    assert_eq!(outcome, Outcome::NotFound);
    assert_eq!(
        errors(&log)[0].1,
        "\"noaddr.example.test\" could not be resolved (3: Host not found)"
    );
}

#[test]
fn servfail_is_tempunavail() {
    let dns = Responder::start("127.0.0.1:0", vec![(PTR4, T_PTR, Reply::Rcode(2))]).unwrap();
    let (outcome, log) = drive(lookup(&dns, LOCAL4, 5 * SECOND));
    assert_eq!(outcome, Outcome::TempFail);
    assert_eq!(outcome.host_text(), "[TEMPUNAVAIL]");
    assert_eq!(
        errors(&log),
        vec![(
            ACTION_ADDRESS,
            "127.0.0.1 could not be resolved (2: Server failure)".to_string()
        )]
    );
}

#[test]
fn refused_forward_wins_over_addresses() {
    // nginx fails the whole name lookup when either family has an error.
    let dns = Responder::start(
        "127.0.0.1:0",
        vec![
            (PTR4, T_PTR, Reply::Ptr("half.example.test")),
            (
                "half.example.test",
                T_A,
                Reply::A(vec![Ipv4Addr::LOCALHOST]),
            ),
            ("half.example.test", T_AAAA, Reply::Rcode(5)),
        ],
    )
    .unwrap();
    let (outcome, log) = drive(lookup(&dns, LOCAL4, 5 * SECOND));
    assert_eq!(outcome, Outcome::TempFail);
    assert_eq!(
        errors(&log)[0].1,
        "\"half.example.test\" could not be resolved (5: Operation refused)"
    );
}

#[test]
fn silence_times_out_after_resolver_timeout() {
    let dns = Responder::start("127.0.0.1:0", vec![(PTR4, T_PTR, Reply::Silent)]).unwrap();
    let started = Instant::now();
    let (outcome, log) = drive(lookup(&dns, LOCAL4, Duration::from_millis(300)));
    let took = started.elapsed();
    assert_eq!(outcome, Outcome::TempFail);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(
        errors(&log),
        vec![(
            ACTION_ADDRESS,
            "127.0.0.1 could not be resolved (110: Operation timed out)".to_string()
        )]
    );
}

#[test]
fn forward_step_has_its_own_timeout() {
    let dns = Responder::start(
        "127.0.0.1:0",
        vec![
            (PTR4, T_PTR, Reply::Ptr("slow.example.test")),
            (
                "slow.example.test",
                T_A,
                Reply::A(vec![Ipv4Addr::LOCALHOST]),
            ),
            ("slow.example.test", T_AAAA, Reply::Silent),
        ],
    )
    .unwrap();
    let (outcome, log) = drive(lookup(&dns, LOCAL4, Duration::from_millis(300)));
    assert_eq!(outcome, Outcome::TempFail);
    assert_eq!(
        errors(&log),
        vec![(
            ACTION_HOSTNAME,
            "\"slow.example.test\" could not be resolved (110: Operation timed out)".to_string()
        )]
    );
}

#[test]
fn invalid_ptr_name_is_tempunavail() {
    let dns = Responder::start(
        "127.0.0.1:0",
        vec![(PTR4, T_PTR, Reply::Ptr("bad_name.example.test"))],
    )
    .unwrap();
    let (outcome, log) = drive(lookup(&dns, LOCAL4, 5 * SECOND));
    assert_eq!(outcome, Outcome::TempFail);
    assert_eq!(
        errors(&log),
        vec![(
            ACTION_ADDRESS,
            "127.0.0.1 resolved to invalid host name \"bad_name.example.test\"".to_string()
        )]
    );
    assert_eq!(dns.queries().len(), 1, "no forward lookup");
}

#[test]
fn ipv6_off_asks_for_a_only() {
    let dns = mail_example_dns();
    let mut conf = resolver(dns.addr);
    conf.ipv6 = false;
    let l = started(HostLookup::start(
        &conf,
        new_cache(&conf),
        5 * SECOND,
        LOCAL4,
        Instant::now(),
    ));
    let (outcome, _) = drive(l);
    assert_eq!(outcome, Outcome::Found("mail.example.test".into()));
    assert!(!dns.queries().iter().any(|(_, t)| *t == T_AAAA));
}

#[test]
fn ipv6_client_over_ipv6_server() {
    let Ok(dns) = Responder::start(
        "[::1]:0",
        vec![
            (
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
                T_PTR,
                Reply::Ptr("v6.example.test"),
            ),
            (
                "v6.example.test",
                T_AAAA,
                Reply::Aaaa(vec![Ipv6Addr::LOCALHOST]),
            ),
        ],
    ) else {
        eprintln!("no IPv6 loopback, skipped");
        return;
    };
    let (outcome, log) = drive(lookup(&dns, IpAddr::V6(Ipv6Addr::LOCALHOST), 5 * SECOND));
    assert_eq!(outcome, Outcome::Found("v6.example.test".into()), "{log:?}");
}

#[test]
fn ipv6_client_nxdomain_log_uses_bare_address() {
    let dns = Responder::start("127.0.0.1:0", vec![]).unwrap();
    let client: IpAddr = "2001:db8::25".parse().unwrap();
    let (outcome, log) = drive(lookup(&dns, client, 5 * SECOND));
    assert_eq!(outcome, Outcome::NotFound);
    assert_eq!(
        errors(&log)[0].1,
        "2001:db8::25 could not be resolved (3: Host not found)"
    );
}

#[test]
fn reverse_names() {
    assert_eq!(
        reverse_name("192.0.2.10".parse().unwrap()),
        "10.2.0.192.in-addr.arpa"
    );
    assert_eq!(
        reverse_name("2001:db8::567:89ab".parse().unwrap()),
        "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    );
}

#[test]
fn host_name_validation_as_nginx() {
    assert!(valid_host_name("mail-1.Example.COM"));
    assert!(valid_host_name("a"));
    assert!(!valid_host_name(""));
    assert!(!valid_host_name("bad_name"));
    assert!(!valid_host_name("a/b"));
    assert!(!valid_host_name("a*"));
    assert!(!valid_host_name("a b"));
}

#[test]
fn error_texts() {
    assert_eq!(resolver_strerror(1), "Format error");
    assert_eq!(resolver_strerror(2), "Server failure");
    assert_eq!(resolver_strerror(3), "Host not found");
    assert_eq!(resolver_strerror(4), "Unimplemented");
    assert_eq!(resolver_strerror(5), "Operation refused");
    assert_eq!(resolver_strerror(110), "Operation timed out");
    assert_eq!(resolver_strerror(9), "Unknown error");
}

#[test]
fn no_servers_is_an_error() {
    let conf = Resolver {
        servers: vec![],
        valid: None,
        ipv4: true,
        ipv6: true,
    };
    assert!(HostLookup::start(&conf, new_cache(&conf), SECOND, LOCAL4, Instant::now()).is_err());
}

#[test]
fn dropping_a_running_lookup_closes_its_sockets() {
    let dns = Responder::start("127.0.0.1:0", vec![(PTR4, T_PTR, Reply::Silent)]).unwrap();
    let mut l = lookup(&dns, LOCAL4, 5 * SECOND);
    let watched: Vec<RawFd> = l
        .take_fd_changes()
        .into_iter()
        .filter_map(|c| match c {
            FdChange::Watch { fd, .. } => Some(fd),
            FdChange::Forget { .. } => None,
        })
        .collect();
    assert!(!watched.is_empty());
    let shared = Arc::clone(&l.shared);
    drop(l);
    let changes = lock(&shared).fd_changes.clone();
    for fd in watched {
        assert!(changes.contains(&FdChange::Forget { fd }), "{changes:?}");
    }
}

/// A second lookup of the same client within the TTL (3600 s here) is
/// answered from the worker's cache at once, without a socket or a query,
/// and logs the same lines; the PTR name alone cached still saves the
/// PTR query.
#[test]
fn answers_are_cached() {
    let dns = mail_example_dns();
    let conf = resolver(dns.addr);
    let cache = new_cache(&conf);
    let first = started(HostLookup::start(
        &conf,
        cache.clone(),
        5 * SECOND,
        LOCAL4,
        Instant::now(),
    ));
    let (outcome, first_log) = drive(first);
    assert_eq!(outcome, Outcome::Found("mail.example.test".into()));
    let asked = dns.queries().len();
    assert_eq!(lock(&cache).len(), 2, "the name and its addresses");

    let (mut again, outcome) =
        HostLookup::start(&conf, cache.clone(), 5 * SECOND, LOCAL4, Instant::now()).unwrap();
    assert_eq!(outcome, Some(Outcome::Found("mail.example.test".into())));
    assert_eq!(again.take_fd_changes(), vec![], "no socket");
    assert!(again.channel.is_none(), "no c-ares channel either");
    assert_eq!(again.take_log(), first_log);
    assert_eq!(dns.queries().len(), asked);

    // Another client with the same name: its PTR is asked, the name's
    // addresses come from the cache.
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let dns2 = Responder::start(
        "127.0.0.1:0",
        vec![(
            "2.0.0.127.in-addr.arpa",
            T_PTR,
            Reply::Ptr("mail.example.test"),
        )],
    )
    .unwrap();
    let conf2 = Resolver {
        servers: vec![dns2.addr],
        ..conf
    };
    let (outcome, _) = drive(started(HostLookup::start(
        &conf2,
        cache,
        5 * SECOND,
        other,
        Instant::now(),
    )));
    assert_eq!(
        outcome,
        Outcome::NotFound,
        "127.0.0.2 is not among the cached addresses"
    );
    assert_eq!(
        dns2.queries(),
        vec![("2.0.0.127.in-addr.arpa".to_string(), T_PTR)]
    );
}

/// Failures are not kept (nginx drops the node): the next session asks
/// again.
#[test]
fn failures_are_not_cached() {
    let dns = Responder::start("127.0.0.1:0", vec![]).unwrap();
    let conf = resolver(dns.addr);
    let cache = new_cache(&conf);
    for round in 1..=2 {
        let l = started(HostLookup::start(
            &conf,
            cache.clone(),
            5 * SECOND,
            LOCAL4,
            Instant::now(),
        ));
        assert_eq!(drive(l).0, Outcome::NotFound);
        assert_eq!(dns.queries().len(), round);
    }
    assert!(lock(&cache).is_empty());
}
