//! `corral run --io-read-bps PATH=RATE --io-write-bps PATH=RATE`: I/O
//! throttles on the disk that holds PATH (a device node or any path on it).

use corral::{IoLimit, Limits};
use std::path::PathBuf;

#[derive(Debug, Default, clap::Args)]
pub struct IoArgs {
    /// Throttle reads from the disk of PATH to RATE bytes/s (PATH=RATE, like /dev/vda=10MiB; repeatable).
    #[arg(long = "io-read-bps", value_name = "PATH=RATE", value_parser = parse_rate)]
    read_bps: Vec<(PathBuf, u64)>,
    /// Throttle writes to the disk of PATH to RATE bytes/s (PATH=RATE; repeatable).
    #[arg(long = "io-write-bps", value_name = "PATH=RATE", value_parser = parse_rate)]
    write_bps: Vec<(PathBuf, u64)>,
}

fn parse_rate(s: &str) -> Result<(PathBuf, u64), String> {
    let (path, rate) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("invalid I/O limit '{s}': expected PATH=RATE, like /dev/vda=10MiB"))?;
    match corral::units::parse_size(rate) {
        Ok(0) => Err(format!("invalid I/O rate '{rate}': must be greater than 0")),
        Ok(n) if !path.is_empty() => Ok((PathBuf::from(path), n)),
        Ok(_) => Err(format!("invalid I/O limit '{s}': expected PATH=RATE, like /dev/vda=10MiB")),
        Err(e) => Err(e.to_string()),
    }
}

impl IoArgs {
    /// `limits` with one throttle per path named.
    pub fn apply(&self, mut limits: Limits) -> Limits {
        let mut by_path: Vec<IoLimit> = Vec::new();
        let rates =
            self.read_bps.iter().map(|(p, r)| (p, *r, true)).chain(self.write_bps.iter().map(|(p, r)| (p, *r, false)));
        for (p, r, read) in rates {
            let i = match by_path.iter().position(|l| &l.device == p) {
                Some(i) => i,
                None => {
                    by_path.push(IoLimit::new(p));
                    by_path.len() - 1
                }
            };
            if read {
                by_path[i].read_bps = Some(r);
            } else {
                by_path[i].write_bps = Some(r);
            }
        }
        for l in by_path {
            limits = limits.io(l);
        }
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_path_equals_size() {
        assert_eq!(parse_rate("/dev/vda=10MiB").unwrap(), (PathBuf::from("/dev/vda"), 10 << 20));
        assert!(parse_rate("/dev/vda").unwrap_err().contains("PATH=RATE"));
        assert!(parse_rate("/dev/vda=0").unwrap_err().contains("greater than 0"));
    }

    #[test]
    fn reads_and_writes_of_one_path_make_one_limit() {
        let a = IoArgs { read_bps: vec![("/".into(), 1)], write_bps: vec![("/".into(), 2), ("/srv".into(), 3)] };
        let l = a.apply(Limits::new());
        assert_eq!(l.io.len(), 2);
        assert_eq!((l.io[0].read_bps, l.io[0].write_bps), (Some(1), Some(2)));
    }
}
