//! Who is in: invites, this member's devices, and removing a member by
//! consent.

use super::*;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum InviteCommand {
    /// The circle's invites: who made them, until when, how many uses are left
    #[command(after_help = "Example: roundtable invite list")]
    List,
    /// Stop an invite's ticket from working
    #[command(after_help = "Example: roundtable invite revoke 3fa2")]
    Revoke {
        /// The invite's id (or the start of it), from `roundtable invite list`
        id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum DeviceCommand {
    /// Your devices in this circle, and which are revoked
    #[command(after_help = "Example: roundtable device list")]
    List,
    /// Revoke a lost or stolen device: it is refused from then on, its later
    /// edits are rejected, and the circle's key changes
    #[command(after_help = "Example: roundtable device revoke 9c1e")]
    Revoke {
        /// The device's id (or the start of it), from `roundtable device list`
        id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum RemoveCommand {
    /// Propose to remove a member; the others decide
    #[command(
        after_help = "Example: roundtable remove propose Lee --reason \"we have talked with Lee many times\""
    )]
    Propose {
        /// Their name or member id
        member: String,
        /// Why, in a few words (they will see it)
        #[arg(long)]
        reason: Option<String>,
    },
    /// Consent to a proposal
    #[command(after_help = "Example: roundtable remove consent 3fa2")]
    Consent {
        /// The proposal's id (or the start of it), from `roundtable remove list`
        proposal: String,
    },
    /// Withdraw a proposal you made
    #[command(after_help = "Example: roundtable remove withdraw 3fa2")]
    Withdraw {
        /// The proposal's id (or the start of it)
        proposal: String,
    },
    /// Proposals, who consented, and how many it takes
    #[command(after_help = "Example: roundtable remove list")]
    List,
}

pub(super) fn invite(
    backend: &Backend,
    global: &Global,
    command: InviteCommand,
    now: Timestamp,
) -> Result<()> {
    let view = read(backend, global)?.view();
    match command {
        InviteCommand::List => render::invites(&view, now, global.json),
        InviteCommand::Revoke { id } => {
            let invite = resolve_in(view.invites.keys(), &id, "invite")?;
            let edit = (
                Op::RevokeInvite { invite },
                "The invite is revoked; its ticket no longer works.".into(),
            );
            perform_and_say(backend, global, edit, now)
        }
    }
}

pub(super) fn device(
    backend: &Backend,
    global: &Global,
    command: DeviceCommand,
    now: Timestamp,
) -> Result<()> {
    let circle = read(backend, global)?;
    let v = circle.view();
    let edit = match command {
        DeviceCommand::List => {
            let me = backend.home().identity()?.ok_or_else(no_circle_yet)?;
            return render::devices(&v, &circle.membership(), &me, global.json);
        }
        DeviceCommand::Revoke { id } => {
            let device = match resolve_prefix(
                &id,
                v.members.values().flat_map(|m| m.devices.keys().copied()),
            ) {
                Resolved::One(d) => d,
                Resolved::None => {
                    return Err(bad_input(format!(
                        "there is no device with an id starting with \"{id}\"; `roundtable device list` shows them"
                    )));
                }
                Resolved::Ambiguous(_) => {
                    return Err(bad_input(format!(
                        "several devices have ids starting with \"{id}\"; type more of the id"
                    )));
                }
                Resolved::TooShort => {
                    return Err(bad_input(format!(
                        "\"{id}\" is too short: type at least {MIN_PREFIX} characters of the device's id"
                    )));
                }
            };
            (
                Op::RevokeDevice { device },
                format!(
                    "Device {} is revoked: it is refused from now on, and the circle has a new key.",
                    device.fmt_short()
                ),
            )
        }
    };
    perform_and_say(backend, global, edit, now)
}

pub(super) fn remove(
    backend: &Backend,
    global: &Global,
    command: RemoveCommand,
    now: Timestamp,
) -> Result<()> {
    let circle = read(backend, global)?;
    let v = circle.view();
    let edit = match command {
        RemoveCommand::List => {
            return render::proposals(&v, &circle.membership(), global.json);
        }
        RemoveCommand::Propose { member, reason } => {
            let target = resolve_member(&v, &member)?;
            (
                Op::ProposeRemoval {
                    target,
                    reason: reason.unwrap_or_default(),
                },
                format!(
                    "Proposed. {} and the others will see it; it carries when a majority of the other members consent.",
                    v.name_of(&target)
                ),
            )
        }
        RemoveCommand::Consent { proposal } => {
            let proposal = resolve_in(v.removals.keys(), &proposal, "proposal")?;
            (Op::Consent { proposal }, "Your consent is recorded.".into())
        }
        RemoveCommand::Withdraw { proposal } => {
            let proposal = resolve_in(v.removals.keys(), &proposal, "proposal")?;
            (
                Op::Withdraw { proposal },
                "The proposal is withdrawn.".into(),
            )
        }
    };
    perform_and_say(backend, global, edit, now)
}
