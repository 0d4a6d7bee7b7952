//! `tcp = "host:port"`: passed when the port accepts a connection, which
//! is closed at once.

/// Checks `host:port` at load time. Returns the reason it is refused.
pub fn validate(addr: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("invalid address `{addr}`: expected host:port like \"127.0.0.1:5432\""));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("invalid address `{addr}`: no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("invalid address `{addr}`: port `{port}` is not 1-65535")),
    }
}

/// One connection attempt.
pub async fn check(addr: &str) -> Result<String, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| addr.to_string());
    Ok(format!("connected to {peer}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_at_load() {
        assert!(validate("127.0.0.1:5432").is_ok());
        assert!(validate("db.local:5432").is_ok());
        assert!(validate("[::1]:5432").is_ok());
        assert!(validate("127.0.0.1").is_err());
        assert!(validate(":80").is_err());
        assert!(validate("x:0").is_err());
        assert!(validate("x:99999").is_err());
    }
}
