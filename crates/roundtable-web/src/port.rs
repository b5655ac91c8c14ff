//! Who holds a TCP port on this machine, so a refusal can name them.
//!
//! On Linux the kernel's tables of listening sockets (`/proc/net/tcp` and
//! `/proc/net/tcp6`: one socket a line, its local address as hex, its state,
//! and the uid that owns it) say which user listens on a port, even when it
//! is another user's program.

/// Who holds a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The owning user's id, when the kernel says.
    pub uid: Option<u32>,
    /// Their user name, when the system knows it.
    pub user: Option<String>,
    /// Whether that is the user running this program.
    pub me: bool,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.user, self.uid, self.me) {
            (Some(user), Some(_), true) => {
                write!(f, "another program of yours (user {user})")
            }
            (Some(user), Some(uid), false) => {
                write!(f, "a program of another user, {user} (uid {uid})")
            }
            (None, Some(uid), true) => write!(f, "another program of yours (uid {uid})"),
            (None, Some(uid), false) => write!(f, "a program of another user (uid {uid})"),
            (_, None, _) => write!(f, "another program"),
        }
    }
}

/// Who listens on `port` of this machine, as far as it says.
pub(crate) fn holder(port: u16) -> Holder {
    let uid = listening_uid(port);
    let me = uid.is_some_and(|u| u == uzers::get_current_uid());
    let user = uid
        .and_then(uzers::get_user_by_uid)
        .map(|u| u.name().to_string_lossy().into_owned());
    Holder { uid, user, me }
}

/// The uid owning a listening socket on `port`, from the kernel's tables.
fn listening_uid(port: u16) -> Option<u32> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .find_map(|table| uid_in(&table, port))
}

/// In one table (`sl local_address rem_address st ... uid ...`): the uid
/// of the first socket listening (state `0A`) on `port`.
fn uid_in(table: &str, port: u16) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        let (_, hex_port) = local.rsplit_once(':')?;
        let listening = *fields.get(3)? == "0A";
        (listening && u16::from_str_radix(hex_port, 16).ok()? == port)
            .then(|| fields.get(7)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_the_listener_of_a_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1E61 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1E62 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1002        0 12346 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(uid_in(table, 7777), Some(1001));
        assert_eq!(uid_in(table, 7778), None, "not listening");
        assert_eq!(uid_in(table, 80), None);
    }

    #[test]
    fn a_port_this_process_holds_is_named_as_mine() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let port = l.local_addr().expect("an address").port();
        let h = holder(port);
        if std::path::Path::new("/proc/net/tcp").exists() {
            assert_eq!(h.uid, Some(uzers::get_current_uid()));
            assert!(h.me);
            assert!(h.to_string().contains("yours"), "{h}");
        }
    }
}
