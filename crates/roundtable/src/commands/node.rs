//! This device's node: running it, a link to the web app it serves, and
//! how it stands with its peers. What each does is in `network.rs`.

use super::*;

/// `roundtable up`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: roundtable up --relay none\nStop it with Ctrl-C. While it runs, every other command talks to it."
)]
pub(crate) struct UpArgs {
    /// Where to listen, e.g. 0.0.0.0:7000 (repeat for several) [default: all interfaces, any port]
    #[arg(long, value_name = "ADDR")]
    listen: Vec<std::net::SocketAddr>,
    /// Relays: default, none (direct and local network only), or the URL of your own relay
    #[arg(long, default_value = "default", value_name = "default|none|URL")]
    relay: String,
    /// Do not look for other devices on the local network
    #[arg(long)]
    no_mdns: bool,
    /// Where to serve the web app: 127.0.0.1:PORT or [::1]:PORT (a port another program holds is refused)
    #[arg(long, default_value = "127.0.0.1:7777", value_name = "ADDR")]
    web: std::net::SocketAddr,
    /// Do not serve the web app
    #[arg(long, conflicts_with = "web")]
    no_web: bool,
    /// Do not open the web app in a browser
    #[arg(long)]
    no_browser: bool,
}

impl UpArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let web = network::WebChoice {
            addr: (!self.no_web).then_some(self.web),
            browser: !self.no_browser,
        };
        network::up(
            &cx.backend,
            &cx.global,
            self.listen,
            &self.relay,
            self.no_mdns,
            web,
        )
    }
}

/// `roundtable web`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable web --open
The running node (`roundtable up`) serves the app and makes the link; it works once, within 15 minutes. `--new-link` also signs every browser out.")]
pub(crate) struct WebArgs {
    /// Open it in the browser
    #[arg(long)]
    open: bool,
    /// Sign every browser out first, then make the link
    #[arg(long)]
    new_link: bool,
}

impl WebArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        network::web(&cx.backend, &cx.global, self.open, self.new_link)
    }
}

/// `roundtable status`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable status --json")]
pub(crate) struct StatusArgs;

impl StatusArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        network::status(&cx.backend, &cx.global)
    }
}
