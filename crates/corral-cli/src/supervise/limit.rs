//! `corral limit SERVICE --memory 1GiB …`: new limits for the running
//! instances of a service, applied without a restart. They last until the
//! instance starts again or the config is reloaded; the config stays the
//! truth.

use super::{client_verbs::call, Common, FAILED};
use clap::Args;
use corral_supervisor::LimitResult;

#[derive(Debug, Args)]
pub struct LimitArgs {
    #[command(flatten)]
    common: Common,
    /// The service.
    service: String,
    /// Memory of each instance's whole group (512MiB, 1.5G).
    #[arg(short = 'm', long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Processes each instance may hold at once.
    #[arg(short = 'p', long = "max-procs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=corral::MAX_PROCS as i64))]
    max_procs: Option<u32>,
    /// CPU rate in cores (0.5, 2).
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    cpus: Option<f64>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    match corral::units::parse_size(s) {
        Ok(0) => Err(format!("invalid size '{s}': must be greater than 0")),
        r => r.map_err(|e| e.to_string()),
    }
}

fn parse_cpus(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= corral::MAX_CPUS => Ok(v),
        _ => Err(format!("invalid CPU count '{s}': expected cores above 0 and at most 1024, like 0.5 or 2")),
    }
}

pub fn main(a: LimitArgs) -> u8 {
    let mut query = Vec::new();
    if let Some(m) = a.memory {
        query.push(format!("memory={m}"));
    }
    if let Some(n) = a.max_procs {
        query.push(format!("max_procs={n}"));
    }
    if let Some(c) = a.cpus {
        query.push(format!("cpus={c}"));
    }
    if query.is_empty() {
        crate::exit::error("name a limit to change: --memory, --max-procs or --cpus");
        return FAILED;
    }
    // Service names are letters, digits, '-', '_' and '.': no escaping needed.
    let path = format!("/v1/services/{}/limits?{}", a.service, query.join("&"));
    let r = match call(&a.common, "POST", &path) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let list: Vec<LimitResult> = serde_json::from_value(r.json()["instances"].clone()).unwrap_or_default();
    let mut code = 0;
    for i in list {
        match i.error {
            None => println!("{}.{}: limits changed", i.service, i.instance),
            Some(why) => {
                eprintln!("corral: {}.{}: limits not changed: {why}", i.service, i.instance);
                code = FAILED;
            }
        }
    }
    code
}
