//! The two clocks of a notify service, as plain data: the start timeout
//! (no `READY=1` in time fails the start; `EXTEND_TIMEOUT_USEC` pushes it
//! out) and the watchdog (no `WATCHDOG=1` within the period fails the
//! run). Time comes in as an argument: no clock, no I/O, unit-tested.

use super::message::Field;
use std::time::{Duration, Instant};

/// The longest one `EXTEND_TIMEOUT_USEC` or `WATCHDOG_USEC` may ask for: a
/// service cannot make its own clock meaningless.
pub const MAX_USEC: Duration = Duration::from_secs(3600);

/// Which clock ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No `READY=1` by the (possibly extended) start deadline.
    Start,
    /// No `WATCHDOG=1` within `period` (or `WATCHDOG=trigger`).
    Watchdog {
        /// The watchdog period in force.
        period: Duration,
        /// The service asked for it (`WATCHDOG=trigger`).
        triggered: bool,
    },
}

/// The deadlines of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timers {
    /// Until `READY=1`; `None` once ready (or never gated).
    start: Option<Instant>,
    watchdog: Option<(Duration, Instant)>,
}

fn usec(u: u64) -> Duration {
    Duration::from_micros(u).min(MAX_USEC)
}

impl Timers {
    /// The clocks of a run spawned at `now`: the start timeout when the
    /// run must say it is ready, the watchdog when it has one.
    pub fn new(start_timeout: Option<Duration>, watchdog: Option<Duration>, now: Instant) -> Timers {
        Timers {
            start: start_timeout.map(|t| corral::deadline::after(now, t)),
            watchdog: watchdog.map(|p| (p, corral::deadline::after(now, p))),
        }
    }

    /// Takes one field in; `Some` when it fails the run at once.
    pub fn on(&mut self, field: &Field, now: Instant) -> Option<Expired> {
        match field {
            Field::Ready => self.start = None,
            Field::ExtendTimeoutUsec(u) => {
                if let Some(d) = self.start.as_mut() {
                    *d = (*d).max(corral::deadline::after(now, usec(*u)));
                }
            }
            Field::Watchdog => {
                if let Some((p, d)) = self.watchdog.as_mut() {
                    *d = corral::deadline::after(now, *p);
                }
            }
            Field::WatchdogUsec(u) => {
                // Like systemd: a new period takes effect at once, even
                // for a service started without a watchdog.
                let p = usec(*u);
                self.watchdog = Some((p, corral::deadline::after(now, p)));
            }
            Field::WatchdogTrigger => {
                let period = self.watchdog.map_or(Duration::ZERO, |(p, _)| p);
                return Some(Expired::Watchdog { period, triggered: true });
            }
            _ => {}
        }
        None
    }

    /// The next moment a clock may run out.
    pub fn next(&self) -> Option<Instant> {
        match (self.start, self.watchdog.map(|(_, d)| d)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Which clock has run out by `now`, the start timeout first.
    pub fn expired(&self, now: Instant) -> Option<Expired> {
        if self.start.is_some_and(|d| now >= d) {
            return Some(Expired::Start);
        }
        match self.watchdog {
            Some((period, d)) if now >= d => Some(Expired::Watchdog { period, triggered: false }),
            _ => None,
        }
    }

    /// Still waiting for `READY=1`.
    pub fn starting(&self) -> bool {
        self.start.is_some()
    }
}

/// At most `burst` datagrams at once and `per_sec` a second on average
/// (a token bucket); the rest are dropped and counted by the caller.
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_sec: u32,
    burst: u32,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket at `now`.
    pub fn new(per_sec: u32, burst: u32, now: Instant) -> RateLimit {
        RateLimit { per_sec, burst, tokens: f64::from(burst), last: now }
    }

    /// Whether one more datagram may be taken at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        let gained = now.saturating_duration_since(self.last).as_secs_f64() * f64::from(self.per_sec);
        self.tokens = (self.tokens + gained).min(f64::from(self.burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn ready_in_time_ends_the_start_timeout() {
        let t0 = Instant::now();
        let mut t = Timers::new(Some(10 * S), None, t0);
        assert_eq!(t.expired(t0 + 9 * S), None);
        assert_eq!(t.on(&Field::Ready, t0 + 9 * S), None);
        assert_eq!(t.expired(t0 + 100 * S), None);
        assert!(!t.starting());
        assert_eq!(t.next(), None);
    }

    #[test]
    fn no_ready_by_the_deadline_fails_the_start() {
        let t0 = Instant::now();
        let t = Timers::new(Some(10 * S), None, t0);
        assert_eq!(t.next(), Some(t0 + 10 * S));
        assert_eq!(t.expired(t0 + 10 * S), Some(Expired::Start));
    }

    #[test]
    fn extend_timeout_pushes_the_deadline_out_never_in_and_is_bounded() {
        let t0 = Instant::now();
        let mut t = Timers::new(Some(10 * S), None, t0);
        t.on(&Field::ExtendTimeoutUsec(30_000_000), t0 + 5 * S);
        assert_eq!(t.expired(t0 + 34 * S), None);
        assert_eq!(t.expired(t0 + 35 * S), Some(Expired::Start));
        // A shorter extension does not pull the deadline in.
        t.on(&Field::ExtendTimeoutUsec(1), t0 + 6 * S);
        assert_eq!(t.expired(t0 + 34 * S), None);
        // A huge one is capped at MAX_USEC from now.
        t.on(&Field::ExtendTimeoutUsec(u64::MAX), t0 + 6 * S);
        assert_eq!(t.next(), Some(t0 + 6 * S + MAX_USEC));
    }

    #[test]
    fn each_watchdog_ping_restarts_the_period() {
        let t0 = Instant::now();
        let mut t = Timers::new(None, Some(2 * S), t0);
        t.on(&Field::Watchdog, t0 + S);
        t.on(&Field::Watchdog, t0 + 2 * S);
        assert_eq!(t.expired(t0 + 3 * S), None);
        assert_eq!(t.expired(t0 + 4 * S), Some(Expired::Watchdog { period: 2 * S, triggered: false }));
    }

    #[test]
    fn a_new_watchdog_period_and_a_trigger_take_effect_at_once() {
        let t0 = Instant::now();
        let mut t = Timers::new(None, None, t0);
        assert_eq!(t.next(), None);
        t.on(&Field::WatchdogUsec(500_000), t0);
        assert_eq!(t.next(), Some(t0 + S / 2));
        assert_eq!(t.on(&Field::WatchdogTrigger, t0), Some(Expired::Watchdog { period: S / 2, triggered: true }));
    }

    #[test]
    fn the_start_timeout_is_reported_before_the_watchdog() {
        let t0 = Instant::now();
        let t = Timers::new(Some(S), Some(S), t0);
        assert_eq!(t.expired(t0 + S), Some(Expired::Start));
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_the_average() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(10, 5, t0);
        assert_eq!((0..8).filter(|_| r.take(t0)).count(), 5);
        assert!(r.take(t0 + S / 10));
        assert!(!r.take(t0 + S / 10));
        assert_eq!((0..20).filter(|_| r.take(t0 + 10 * S)).count(), 5, "never more than the burst");
    }
}
