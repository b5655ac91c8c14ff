//! A relay of a circle's own, for the multi-host tests: an `iroh-relay`
//! server on plain HTTP (no certificate involved), at the address given.
//!
//! Usage: `relay ADDR` (e.g. `10.213.90.254:3340`). Prints `RELAY URL` once
//! it listens, and serves until killed.

use std::net::SocketAddr;

use iroh_relay::server::{RelayConfig, Server, ServerConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: relay ADDR");
    let mut config = ServerConfig::default();
    config.relay = Some(RelayConfig::new(addr));
    let server = Server::spawn(config).await.expect("the relay starts");
    let http = server.http_addr().expect("it serves HTTP");
    println!("RELAY http://{http}");
    std::future::pending::<()>().await;
}
