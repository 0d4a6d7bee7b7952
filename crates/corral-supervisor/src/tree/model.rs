//! A tree of processes: each member under the process that started it.
//!
//! Placement, most trusted first: the parent recorded by lineage (the
//! process that forked it, even one re-parented since, with the gone
//! processes in between kept as gone members); else its parent now, when
//! that is a member; else the leader, marked re-parented: nothing known
//! is better than an invented edge.

use super::lineage::{lineage_note, Lineage, Record};
use corral::ProcessInfo;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Gone ancestors followed up a lineage chain at most; deeper chains end
/// under the leader, marked re-parented.
const MAX_CHAIN: usize = 64;

/// How a member got its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// A root: the leader, or a process of a trace with no known parent.
    Root,
    /// Under its parent pid, which is a member.
    Parent,
    /// Under the process that forked it, as recorded (its parent pid now
    /// may be a subreaper or init).
    Lineage,
    /// Under the leader because its parent left the group and no lineage
    /// tells who started it.
    Reparented,
}

/// One process of a tree. The first seven fields are the dashboard's
/// `members` schema; the rest place it and tell its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Its pid.
    pub pid: u32,
    /// Its parent pid as the OS tells it now (live), or the recorded
    /// parent (gone); 0 when unknown.
    pub ppid: u32,
    /// Its process group (0 when unknown or gone).
    pub pgid: u32,
    /// Its session (0 when unknown or gone).
    pub sid: u32,
    /// Its command line.
    pub cmd: String,
    /// CPU time used, ms, where known.
    pub cpu_ms: Option<u64>,
    /// Resident memory, bytes, where known.
    pub rss_bytes: Option<u64>,
    /// The pid of the member it is drawn under; `None` for a root.
    pub parent: Option<u32>,
    /// How it got there.
    pub placement: Placement,
    /// False for a process that has ended.
    pub alive: bool,
    /// Its exit code, once ended with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The signal that ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// When it was seen starting (ms since the Unix epoch), from lineage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// When it ended (ms since the Unix epoch), from lineage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exited_ms: Option<u64>,
}

impl Member {
    /// How it ended, for people: `exit 0`, `signal 9`, `gone`; `None` while alive.
    pub fn ending(&self) -> Option<String> {
        if self.alive {
            return None;
        }
        Some(match (self.code, self.signal) {
            (_, Some(s)) => format!("signal {s}"),
            (Some(c), None) => format!("exit {c}"),
            (None, None) => "gone".into(),
        })
    }
}

/// Members in drawing order (a parent before its children), with what the
/// tree knows about lineage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// The leader (of the last run, for a trace), if known.
    pub leader: Option<u32>,
    /// True when placement used recorded lineage.
    pub lineage: bool,
    /// Why lineage is or is not known, for people.
    pub note: String,
    /// Every member.
    pub members: Vec<Member>,
}

impl Tree {
    /// A live group's tree: `procs` are its members now (from the backend),
    /// `leader` its leader, `lineage` what was recorded of it, if anything.
    pub fn live(procs: Vec<ProcessInfo>, leader: u32, lineage: Option<&Lineage>) -> Tree {
        let observed = lineage.is_some_and(|l| l.observed());
        let live: BTreeMap<u32, ProcessInfo> = procs.into_iter().map(|p| (p.pid, p)).collect();
        let mut members: Vec<Member> = Vec::new();
        if !live.contains_key(&leader) {
            // The leader ended while members remain: it stays the root.
            let rec = lineage.and_then(|l| l.latest(leader));
            members.push(gone(leader, rec, None, Placement::Root));
        }
        let mut gone_seen: HashMap<u32, ()> = HashMap::new();
        for p in live.values() {
            let mut m = Member {
                pid: p.pid,
                ppid: p.ppid,
                pgid: p.pgid,
                sid: p.sid,
                cmd: p.cmdline.clone(),
                cpu_ms: p.cpu_ms,
                rss_bytes: p.rss_bytes,
                parent: None,
                placement: Placement::Root,
                alive: true,
                code: None,
                signal: None,
                started_ms: lineage.and_then(|l| l.latest(p.pid)).map(|r| r.started_ms),
                exited_ms: None,
            };
            if p.pid != leader {
                let recorded =
                    if observed { lineage.and_then(|l| l.latest(p.pid)).and_then(|r| r.parent) } else { None };
                let chain = recorded.and_then(|r| chain_to_member(r, &live, leader, lineage));
                match chain {
                    Some(chain) => {
                        // chain[0] is the recorded parent; the last is a member.
                        for (i, &g) in chain.iter().enumerate() {
                            let is_member = live.contains_key(&g) || g == leader;
                            if is_member || gone_seen.contains_key(&g) {
                                break;
                            }
                            let up = chain.get(i + 1).copied();
                            let rec = lineage.and_then(|l| l.latest(g));
                            members.push(gone(g, rec, up, Placement::Lineage));
                            gone_seen.insert(g, ());
                        }
                        m.parent = Some(chain[0]);
                        m.placement = if chain[0] == p.ppid { Placement::Parent } else { Placement::Lineage };
                    }
                    None if live.contains_key(&p.ppid) && p.ppid != p.pid => {
                        m.parent = Some(p.ppid);
                        m.placement = Placement::Parent;
                    }
                    None => {
                        m.parent = Some(leader);
                        m.placement = Placement::Reparented;
                    }
                }
            }
            members.push(m);
        }
        let mut t = Tree {
            leader: Some(leader),
            lineage: observed,
            note: lineage.and_then(|l| l.runs().last()).map(|r| r.note.clone()).unwrap_or_else(|| lineage_note(false)),
            members,
        };
        t.break_cycles();
        t.order();
        t
    }

    /// A trace's tree: every process it recorded, gone ones included.
    pub fn from_lineage(l: &Lineage) -> Tree {
        let mut members = Vec::new();
        let recs: Vec<&Record> = l.records().collect();
        for (i, r) in recs.iter().enumerate() {
            let run = l.runs().get(r.run);
            let leader = run.map(|run| run.leader);
            // The newest earlier record of the parent pid in the same run, or
            // a later one: a process seen (by a snapshot) after its child.
            let run_of = r.run;
            let same = move |pid: u32| move |q: &&&Record| q.pid == pid && q.run == run_of;
            let up = r.parent.filter(|_| Some(r.pid) != leader).and_then(|pp| {
                recs[..i].iter().rev().find(same(pp)).or_else(|| recs[i + 1..].iter().find(same(pp))).map(|q| q.pid)
            });
            let (parent, placement) = match (up, leader) {
                (Some(p), _) => (Some(p), Placement::Lineage),
                (None, Some(ld)) if ld != r.pid && recs.iter().any(|q| same(ld)(&q)) => {
                    (Some(ld), Placement::Reparented)
                }
                _ => (None, Placement::Root),
            };
            let mut m = gone(r.pid, Some(r), parent, placement);
            m.alive = r.exited_ms.is_none();
            members.push(m);
        }
        let last = l.runs().last();
        let mut t = Tree {
            leader: last.map(|r| r.leader),
            lineage: l.runs().iter().all(|r| r.lineage) && !l.runs().is_empty(),
            note: last.map(|r| r.note.clone()).unwrap_or_else(|| "an empty trace".into()),
            members,
        };
        if l.dropped > 0 {
            t.note.push_str(&format!("; {} older processes were dropped to stay within the bound", l.dropped));
        }
        t.order();
        t
    }

    /// The member drawn under nobody, first of each root's subtree.
    pub fn roots(&self) -> Vec<usize> {
        self.ups().iter().enumerate().filter(|(_, u)| u.is_none()).map(|(i, _)| i).collect()
    }

    /// [`Tree::up`] of every member, in one pass.
    pub fn ups(&self) -> Vec<Option<usize>> {
        let mut last: HashMap<u32, usize> = HashMap::with_capacity(self.members.len());
        let mut out = Vec::with_capacity(self.members.len());
        for (i, m) in self.members.iter().enumerate() {
            out.push(m.parent.and_then(|p| last.get(&p).copied()));
            last.insert(m.pid, i);
        }
        out
    }

    /// [`Tree::children`] of every member, in one pass.
    pub fn kids(&self) -> Vec<Vec<usize>> {
        let mut kids = vec![Vec::new(); self.members.len()];
        for (i, u) in self.ups().into_iter().enumerate() {
            if let Some(u) = u {
                kids[u].push(i);
            }
        }
        kids
    }

    /// The index of the member `i` is drawn under: the nearest earlier
    /// member with its `parent` pid (drawing order puts parents first).
    /// One lookup; [`Tree::ups`] gives them all at once.
    pub fn up(&self, i: usize) -> Option<usize> {
        let p = self.members[i].parent?;
        self.members[..i].iter().rposition(|m| m.pid == p)
    }

    /// The children of member `i`, by index.
    pub fn children(&self, i: usize) -> Vec<usize> {
        (i + 1..self.members.len()).filter(|&c| self.up(c) == Some(i)).collect()
    }

    /// Puts members in drawing order: depth first from each root, so a
    /// parent always comes before its children.
    fn order(&mut self) {
        let n = self.members.len();
        // Parents by pid over the unordered list: the nearest record
        // before a member, else any (a live parent listed after its child).
        let mut before: HashMap<u32, usize> = HashMap::with_capacity(n);
        let mut first: HashMap<u32, usize> = HashMap::with_capacity(n);
        for (i, m) in self.members.iter().enumerate() {
            first.entry(m.pid).or_insert(i);
        }
        let mut ups: Vec<Option<usize>> = Vec::with_capacity(n);
        for (i, m) in self.members.iter().enumerate() {
            ups.push(m.parent.and_then(|p| before.get(&p).or_else(|| first.get(&p)).copied()));
            before.insert(m.pid, i);
        }
        let mut kids: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut roots = Vec::new();
        for (i, u) in ups.iter().enumerate() {
            match u {
                Some(u) if *u != i => kids[*u].push(i),
                _ => roots.push(i),
            }
        }
        let mut out = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        let mut stack: Vec<usize> = roots.into_iter().rev().collect();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            out.push(i);
            stack.extend(kids[i].iter().rev());
        }
        // Whatever a cycle kept out becomes a root.
        for (i, m) in self.members.iter_mut().enumerate() {
            if !seen[i] {
                out.push(i);
                m.parent = None;
                m.placement = Placement::Root;
            }
        }
        let old = std::mem::take(&mut self.members);
        let mut slots: Vec<Option<Member>> = old.into_iter().map(Some).collect();
        self.members = out.into_iter().filter_map(|i| slots[i].take()).collect();
    }

    /// A parent chain that loops (pid reuse mixing records) is cut at the
    /// leader: that member goes under the leader, marked re-parented.
    fn break_cycles(&mut self) {
        let by_pid: HashMap<u32, usize> = self.members.iter().enumerate().map(|(i, m)| (m.pid, i)).collect();
        let leader = self.leader;
        for i in 0..self.members.len() {
            let mut at = i;
            for _ in 0..=self.members.len() {
                match self.members[at].parent.and_then(|p| by_pid.get(&p)) {
                    Some(&u) if u == i => {
                        let m = &mut self.members[i];
                        m.parent = leader.filter(|l| *l != m.pid);
                        m.placement = if m.parent.is_some() { Placement::Reparented } else { Placement::Root };
                        break;
                    }
                    Some(&u) => at = u,
                    None => break,
                }
            }
        }
    }
}

/// From a recorded parent up to a live member (or the leader), through
/// gone records; `None` when the chain leaves the group's records.
fn chain_to_member(
    start: u32,
    live: &BTreeMap<u32, ProcessInfo>,
    leader: u32,
    lineage: Option<&Lineage>,
) -> Option<Vec<u32>> {
    let mut chain = vec![start];
    let mut at = start;
    for _ in 0..MAX_CHAIN {
        if live.contains_key(&at) || at == leader {
            return Some(chain);
        }
        let rec = lineage?.latest(at)?;
        // Recorded as alive yet not a member: it left the group.
        rec.exited_ms?;
        at = rec.parent?;
        if chain.contains(&at) {
            return None;
        }
        chain.push(at);
    }
    None
}

/// A member known only from its record (or not at all).
fn gone(pid: u32, rec: Option<&Record>, parent: Option<u32>, placement: Placement) -> Member {
    Member {
        pid,
        ppid: rec.and_then(|r| r.parent).unwrap_or(0),
        pgid: 0,
        sid: 0,
        cmd: rec.map(Record::command).unwrap_or_else(|| "?".into()),
        cpu_ms: None,
        rss_bytes: None,
        parent,
        placement,
        alive: false,
        code: rec.and_then(|r| r.code),
        signal: rec.and_then(|r| r.signal),
        started_ms: rec.map(|r| r.started_ms),
        exited_ms: rec.and_then(|r| r.exited_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::super::lineage::TraceLine;
    use super::*;

    fn p(pid: u32, ppid: u32) -> ProcessInfo {
        ProcessInfo::new(pid, ppid, pid, pid, None, format!("cmd{pid}"))
    }

    fn lineage(observed: bool, lines: &[(u32, u32)], exited: &[u32]) -> Lineage {
        let mut l = Lineage::new();
        l.apply(&TraceLine::Run { leader: 10, lineage: observed, note: "n".into(), backend: "b".into(), at_ms: 0 });
        for &(pid, parent) in lines {
            l.apply(&TraceLine::Start { pid, parent: Some(parent), exe: None, argv: vec![], at_ms: 1 });
        }
        for &pid in exited {
            l.apply(&TraceLine::Exit { pid, code: Some(0), signal: None, at_ms: 2 });
        }
        l
    }

    fn placed(t: &Tree, pid: u32) -> (Option<u32>, Placement) {
        let m = t.members.iter().find(|m| m.pid == pid).unwrap();
        (m.parent, m.placement)
    }

    #[test]
    fn without_lineage_an_escapee_goes_under_the_leader_marked() {
        // 10 leader, 11 child, 20 re-parented to init.
        let t = Tree::live(vec![p(10, 5), p(11, 10), p(20, 1)], 10, None);
        assert_eq!(placed(&t, 10), (None, Placement::Root));
        assert_eq!(placed(&t, 11), (Some(10), Placement::Parent));
        assert_eq!(placed(&t, 20), (Some(10), Placement::Reparented));
        assert!(!t.lineage);
    }

    #[test]
    fn with_lineage_an_escapee_goes_under_its_forker_through_gone_ones() {
        // 10 forked 11 (alive) and 12 (gone), 12 forked 20 (re-parented to 1),
        // 11 forked 21 (re-parented to 1 although 11 lives: a subreaper).
        let l = lineage(true, &[(10, 5), (11, 10), (12, 10), (20, 12), (21, 11)], &[12]);
        let t = Tree::live(vec![p(10, 5), p(11, 10), p(20, 1), p(21, 1)], 10, Some(&l));
        assert_eq!(placed(&t, 20), (Some(12), Placement::Lineage));
        assert_eq!(placed(&t, 12), (Some(10), Placement::Lineage));
        assert!(!t.members.iter().find(|m| m.pid == 12).unwrap().alive);
        assert_eq!(placed(&t, 21), (Some(11), Placement::Lineage));
        for (i, m) in t.members.iter().enumerate() {
            if let Some(u) = t.up(i) {
                assert!(u < i, "parents come first");
                assert_eq!(Some(t.members[u].pid), m.parent);
            }
        }
    }

    #[test]
    fn a_recorded_parent_is_ignored_when_lineage_was_not_observed() {
        let l = lineage(false, &[(10, 5), (20, 12)], &[]);
        let t = Tree::live(vec![p(10, 5), p(20, 1)], 10, Some(&l));
        assert_eq!(placed(&t, 20), (Some(10), Placement::Reparented));
    }

    #[test]
    fn a_gone_leader_stays_the_root() {
        let t = Tree::live(vec![p(11, 1)], 10, None);
        assert_eq!(t.members[0].pid, 10);
        assert!(!t.members[0].alive);
        assert_eq!(placed(&t, 11), (Some(10), Placement::Reparented));
    }

    #[test]
    fn a_trace_keeps_gone_processes_and_reused_pids_apart() {
        let mut l = lineage(true, &[(10, 5), (11, 10)], &[11]);
        l.apply(&TraceLine::Start { pid: 11, parent: Some(10), exe: None, argv: vec![], at_ms: 3 });
        l.apply(&TraceLine::Start { pid: 12, parent: Some(11), exe: None, argv: vec![], at_ms: 4 });
        let t = Tree::from_lineage(&l);
        assert_eq!(t.members.len(), 4);
        let i12 = t.members.iter().position(|m| m.pid == 12).unwrap();
        let up = t.up(i12).unwrap();
        assert!(t.members[up].alive, "12 hangs under the second, live 11");
        assert_eq!(t.members.iter().filter(|m| m.pid == 11 && !m.alive).count(), 1);
    }

    #[test]
    fn a_trace_places_a_child_recorded_before_its_parent() {
        let mut l = Lineage::new();
        l.apply(&TraceLine::Run { leader: 10, lineage: true, note: "n".into(), backend: "b".into(), at_ms: 0 });
        l.apply(&TraceLine::Start { pid: 11, parent: Some(10), exe: None, argv: vec![], at_ms: 1 });
        l.apply(&TraceLine::Start { pid: 10, parent: Some(5), exe: None, argv: vec![], at_ms: 2 });
        let t = Tree::from_lineage(&l);
        assert_eq!(t.members[0].pid, 10, "{t:#?}");
        assert_eq!((t.members[1].parent, t.members[1].placement), (Some(10), Placement::Lineage));
    }

    #[test]
    fn a_cycle_from_reused_pids_is_cut() {
        let l = lineage(true, &[(10, 5), (11, 12), (12, 11)], &[]);
        let t = Tree::live(vec![p(10, 5), p(11, 1), p(12, 1)], 10, Some(&l));
        assert_eq!(t.members.len(), 3);
        assert_eq!(t.roots().len(), 1, "{t:#?}");
    }
}
