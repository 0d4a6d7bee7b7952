//! The kernel's process-event connector (`NETLINK_CONNECTOR`, `CN_IDX_PROC`):
//! every fork, exec and exit on the host, as it happens.
//!
//! corral uses it, where it is permitted (it needs CAP_NET_ADMIN), to count
//! the processes a group started over its life and to stream `Started` and
//! `Exited` events without polling. A group is followed by ancestry: a fork
//! whose parent belongs to a group puts the child in it.
//!
//! Traps:
//! - The leader's own first forks can happen before `spawn` returns its
//!   pid. Forks of this process are therefore followed provisionally, and
//!   the group claims its leader's subtree when it learns the pid.
//! - Under a fork storm the socket can overflow (ENOBUFS) and events are
//!   lost; every group alive then is marked `lost`, and its total is
//!   reported as unknown rather than guessed.
//! - Thread creation is a fork event too; only `pid == tgid` is a process.

use crate::sys::{unix, Wake};
use crate::Event;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

const NETLINK_CONNECTOR: i32 = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_FORK: u32 = 0x1;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;
/// nlmsghdr (16) + cn_msg (20): where `struct proc_event` starts.
const EVENT_AT: usize = 36;

/// One group as the connector follows it.
pub(crate) struct Tracked {
    total: AtomicU64,
    lost: AtomicBool,
    listening: AtomicBool,
    events: Mutex<Vec<Event>>,
    waker: Arc<dyn Wake>,
}

impl Tracked {
    pub(crate) fn new(waker: Arc<dyn Wake>) -> Arc<Tracked> {
        Arc::new(Tracked {
            total: AtomicU64::new(1),
            lost: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            events: Mutex::new(Vec::new()),
            waker,
        })
    }

    /// Processes started over the group's life, unless events were lost.
    pub(crate) fn total(&self) -> Option<u64> {
        (!self.lost.load(Ordering::Relaxed)).then(|| self.total.load(Ordering::Relaxed))
    }

    /// Turns on event collection.
    pub(crate) fn listen(&self) {
        self.listening.store(true, Ordering::Relaxed);
    }

    /// Drains what arrived.
    pub(crate) fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn push(&self, e: Event) {
        if self.listening.load(Ordering::Relaxed) {
            self.events.lock().unwrap_or_else(|p| p.into_inner()).push(e);
            self.waker.wake();
        }
    }
}

#[derive(Default)]
struct State {
    by_pid: HashMap<u32, Arc<Tracked>>,
    /// pid -> provisional root (a direct child of this process).
    provisional: HashMap<u32, u32>,
    /// provisional root -> processes seen in its subtree so far.
    prov_count: HashMap<u32, u64>,
}

pub(crate) struct Watcher {
    state: Mutex<State>,
}

static WATCHER: OnceLock<Option<Watcher>> = OnceLock::new();

/// The host's watcher, started on first use; `None` where the connector is
/// not permitted (then corral falls back to polling).
pub(crate) fn watcher() -> Option<&'static Watcher> {
    WATCHER
        .get_or_init(|| {
            let fd = open().ok()?;
            std::thread::Builder::new().name("corral-proc-events".into()).spawn(move || read_loop(fd)).ok()?;
            Some(Watcher { state: Mutex::new(State::default()) })
        })
        .as_ref()
}

impl Watcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The group learns its leader's pid: it takes over whatever of the
    /// leader's subtree was followed provisionally.
    pub(crate) fn track(&self, leader: u32, t: &Arc<Tracked>) {
        let mut st = self.lock();
        if let Some(n) = st.prov_count.remove(&leader) {
            t.total.store(n, Ordering::Relaxed);
            let pids: Vec<u32> = st.provisional.iter().filter(|(_, r)| **r == leader).map(|(p, _)| *p).collect();
            for p in pids {
                st.provisional.remove(&p);
                st.by_pid.insert(p, t.clone());
            }
        }
        st.by_pid.insert(leader, t.clone());
    }

    pub(crate) fn untrack(&self, t: &Arc<Tracked>) {
        self.lock().by_pid.retain(|_, v| !Arc::ptr_eq(v, t));
    }

    fn fork(&self, parent: u32, child: u32) {
        let me = std::process::id();
        let mut st = self.lock();
        if let Some(t) = st.by_pid.get(&parent).cloned() {
            st.by_pid.insert(child, t.clone());
            t.total.fetch_add(1, Ordering::Relaxed);
            drop(st);
            t.push(Event::Started { pid: child, ppid: Some(parent), exe: None });
        } else if parent == me {
            st.provisional.insert(child, child);
            st.prov_count.insert(child, 1);
        } else if let Some(root) = st.provisional.get(&parent).copied() {
            st.provisional.insert(child, root);
            *st.prov_count.entry(root).or_insert(0) += 1;
        }
    }

    fn exit(&self, pid: u32, raw_status: u32) {
        let mut st = self.lock();
        if let Some(t) = st.by_pid.remove(&pid) {
            drop(st);
            t.push(Event::Exited { pid, status: Some(unix::exit_status(raw_status as i32)) });
            return;
        }
        if let Some(root) = st.provisional.remove(&pid) {
            if root == pid {
                // An unclaimed child of ours ended: forget its subtree.
                st.prov_count.remove(&root);
                st.provisional.retain(|_, r| *r != root);
            }
        }
    }

    fn overflowed(&self) {
        let st = self.lock();
        for t in st.by_pid.values() {
            t.lost.store(true, Ordering::Relaxed);
        }
    }
}

fn open() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_CONNECTOR) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: zeroed sockaddr_nl is valid; the fields are then set.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_pid = 0;
    addr.nl_groups = CN_IDX_PROC;
    let len = std::mem::size_of::<libc::sockaddr_nl>() as u32;
    // SAFETY: addr is a valid sockaddr_nl of `len` bytes.
    if unsafe { libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_nl).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // A bigger receive buffer makes overflow under fork storms rarer.
    let size: libc::c_int = 4 << 20;
    // SAFETY: size is a valid c_int for the call.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    let mut msg = Vec::with_capacity(40);
    msg.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&std::process::id().to_ne_bytes());
    msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // ack
    msg.extend_from_slice(&4u16.to_ne_bytes()); // len
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    // SAFETY: msg is valid for its length.
    if unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn read_loop(fd: OwnedFd) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) => {
                    if let Some(w) = WATCHER.get().and_then(|w| w.as_ref()) {
                        w.overflowed();
                    }
                    continue;
                }
                Some(libc::EINTR) => continue,
                _ => return,
            }
        }
        let Some(w) = WATCHER.get().and_then(|w| w.as_ref()) else { continue };
        let mut off = 0usize;
        let n = n as usize;
        // One datagram may hold several netlink messages.
        while off + EVENT_AT + 16 <= n {
            let len = u32_at(&buf, off).unwrap_or(0) as usize;
            let b = &buf[off..n];
            match u32_at(b, EVENT_AT) {
                Some(PROC_EVENT_FORK) => {
                    let (ptgid, cpid, ctgid) = (u32_at(b, 56), u32_at(b, 60), u32_at(b, 64));
                    if let (Some(p), Some(c), Some(ct)) = (ptgid, cpid, ctgid) {
                        if c == ct {
                            w.fork(p, c);
                        }
                    }
                }
                Some(PROC_EVENT_EXIT) => {
                    let (pid, tgid, code) = (u32_at(b, 52), u32_at(b, 56), u32_at(b, 60));
                    if let (Some(p), Some(t), Some(c)) = (pid, tgid, code) {
                        if p == t {
                            w.exit(p, c);
                        }
                    }
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += (len + 3) & !3;
        }
    }
}
