//! Who is in: invites, this member's devices, and removing a member by
//! consent.

use serde_json::json;

use super::*;

/// `roundtable members`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: roundtable members --json")]
pub(crate) struct MembersArgs;

impl MembersArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        render::members(&cx.view()?, cx.global.json)
    }
}

/// `roundtable invite`: a ticket, or with a subcommand, the circle's
/// invites.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: roundtable invite --expires 7d --uses 3 --qr\nThey join with: roundtable join TICKET --as THEIR_NAME\n`roundtable invite list` shows your circle's invites; `roundtable invite revoke ID` stops one of yours.",
    args_conflicts_with_subcommands = true
)]
pub(crate) struct InviteArgs {
    #[command(subcommand)]
    action: Option<InviteCommand>,
    /// How long the ticket works, e.g. 30m, 24h, 7d (at most 30d); a week unless you say
    #[arg(long, default_value = "7d")]
    expires: String,
    /// How many people can use it
    #[arg(long, default_value_t = 1)]
    uses: u32,
    /// Also draw the ticket as a QR code
    #[arg(long)]
    qr: bool,
}

impl InviteArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        let (backend, global, now) = (&cx.backend, &cx.global, cx.now);
        if let Some(action) = self.action {
            return invite(backend, global, action, now);
        }
        let circle = select(backend, global)?;
        let args = network::Invitation {
            kind: InviteKind::Member,
            expires: &self.expires,
            uses: self.uses,
            qr: self.qr,
        };
        network::invite(backend, global, circle, args, now)
    }
}

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
#[command(
    after_help = "Example: roundtable remove propose Lee --reason \"...\"\nA removal carries when a majority of the other members consent, and never with fewer than two people; so does a welcome back (`roundtable remove welcome-back Lee`)."
)]
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
    /// Propose to welcome back someone the circle removed; the others decide
    #[command(
        name = "welcome-back",
        after_help = "Example: roundtable remove welcome-back Lee --reason \"we talked it through\"\nWelcoming someone back takes what removing them took: a majority of the others, and never fewer than two people."
    )]
    WelcomeBack {
        /// Their name or member id
        member: String,
        /// Why, in a few words (everyone will see it)
        #[arg(long)]
        reason: Option<String>,
    },
    /// Consent to a proposal (to remove someone, or welcome them back)
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

fn invite(
    backend: &Backend,
    global: &Global,
    command: InviteCommand,
    now: Timestamp,
) -> Result<()> {
    let view = read(backend, global)?.view();
    match command {
        InviteCommand::List => invites(&view, now, global.json),
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

impl DeviceCommand {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        device(&cx.backend, &cx.global, self, cx.now)
    }
}

fn device(
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
            return devices(&v, &circle.membership(), &me, global.json);
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

impl RemoveCommand {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        remove(&cx.backend, &cx.global, self, cx.now)
    }
}

fn remove(
    backend: &Backend,
    global: &Global,
    command: RemoveCommand,
    now: Timestamp,
) -> Result<()> {
    let circle = read(backend, global)?;
    let v = circle.view();
    let edit = match command {
        RemoveCommand::List => {
            return proposals(&v, &circle.membership(), global.json);
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
        RemoveCommand::WelcomeBack { member, reason } => {
            let target = resolve_member(&v, &member)?;
            (
                Op::ProposeWelcome {
                    target,
                    reason: reason.unwrap_or_default(),
                },
                format!(
                    "Proposed. The others will see it; {} is welcomed back when a majority of the other members consent.",
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

/// `roundtable vouch`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: roundtable vouch roundtablerecover... --reason \"she rang me\"\nVouch only once you have checked with them yourself, by voice or face to face. The new device becomes theirs when a majority of the other members vouch, never fewer than two people, and their own devices have had the circle's wait to refuse it (`roundtable circle recovery-wait`); then their old devices are let go."
)]
pub(crate) struct VouchArgs {
    /// The request they sent you (a line starting with roundtablerecover)
    request: String,
    /// Who they are in the circle [default: the name in the request]
    #[arg(long = "for", value_name = "MEMBER")]
    member: Option<String>,
    /// How you checked it is them
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

impl VouchArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        vouch(&cx.backend, &cx.global, self, cx.now)
    }
}

/// Vouches for a request to be recognised on a new device, in the circle
/// it names: the first vouch proposes the recovery, later ones consent.
fn vouch(backend: &Backend, global: &Global, args: VouchArgs, now: Timestamp) -> Result<()> {
    let request = roundtable_net::RecoveryRequest::parse(&args.request)
        .map_err(|e| bad_input(e.to_string()))?;
    if !backend.circle_ids()?.contains(&request.circle) {
        return Err(bad_input(
            "this request is for a circle this device does not hold; it is for someone in that circle to vouch",
        ));
    }
    let global = &Global {
        circle: Some(request.circle.to_string()),
        ..global.clone()
    };
    let circle = read(backend, global)?;
    let v = circle.view();
    let target = resolve_member(&v, args.member.as_deref().unwrap_or(&request.name))?;
    let op = Op::Vouch {
        target,
        key: request.cert.member,
        device: request.cert.device,
        cert: request.cert.signature_hex(),
        reason: args.reason.unwrap_or_default(),
    };
    let id = perform(backend, global, &op, now)?;
    let after = read(backend, global)?;
    let membership = after.membership();
    let words = id
        .and_then(|id| membership.proposals.get(&id))
        .map(|p| p.words(&after.view()))
        .unwrap_or_default();
    render::done(
        global.json,
        &format!(
            "You vouched that this new device is {}'s. Now: {words}.",
            v.name_of(&target)
        ),
        id,
    )
}

/// `roundtable refuse`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: roundtable refuse 3fa9\n`roundtable remove list` shows the requests; any device of yours can refuse one until its wait is over."
)]
pub(crate) struct RefuseArgs {
    /// The request's id (or its start), as `roundtable remove list` shows it
    request: String,
}

impl RefuseArgs {
    pub(crate) fn run(self, cx: &Ctx) -> Result<()> {
        refuse(&cx.backend, &cx.global, &self.request, cx.now)
    }
}

/// Refuses, from one of the member's own devices, a request to become
/// theirs.
fn refuse(backend: &Backend, global: &Global, request: &str, now: Timestamp) -> Result<()> {
    let circle = read(backend, global)?;
    let v = circle.view();
    let proposal = resolve_in(v.removals.keys(), request, "request")?;
    perform_and_say(
        backend,
        global,
        (
            Op::RefuseRecovery { proposal },
            "Refused: that device will not become yours, and everyone in the circle sees that one of your devices refused it.".into(),
        ),
        now,
    )
}

// --- how it looks ---

/// The circle's invites.
fn invites(view: &CircleView, now: Timestamp, as_json: bool) -> Result<()> {
    let mut list: Vec<_> = view.invites.iter().collect();
    list.sort_by_key(|(id, i)| (i.at, **id));
    let state = |i: &roundtable_core::view::Invite| i.state(now).as_str();
    if as_json {
        let items: Vec<_> = list
            .iter()
            .map(|(id, i)| {
                json!({
                    "id": id.to_string(),
                    "by": i.by.to_string(),
                    "kind": i.kind.as_str(),
                    "expires_at": i.expires_at,
                    "uses": i.uses,
                    "used": i.redeemed.len(),
                    "state": state(i),
                })
            })
            .collect();
        return render::json(&serde_json::Value::Array(items));
    }
    if list.is_empty() {
        say!("No invites yet. `roundtable invite` makes one.");
    }
    for (id, i) in list {
        say!(
            "{}  {} by {}, {} of {} used, expires {}  [{}]",
            render::short(id),
            i.kind.as_str(),
            view.name_of(&i.by),
            i.redeemed.len(),
            i.uses,
            dates::words(i.expires_at, now, &TimeZone::system()),
            state(i)
        );
    }
    Ok(())
}

/// This member's devices.
fn devices(
    view: &CircleView,
    membership: &roundtable_core::Membership,
    me: &Identity,
    as_json: bool,
) -> Result<()> {
    let mine = view
        .members
        .get(&me.member.id())
        .map(|m| m.devices.clone())
        .unwrap_or_default();
    let this = me.device.id();
    if as_json {
        let items: Vec<_> = mine
            .iter()
            .map(|(d, info)| {
                json!({
                    "id": d.to_string(),
                    "name": info.name,
                    "added_at": info.added_at,
                    "this_device": *d == this,
                    "revoked": membership.revoked.contains(d),
                })
            })
            .collect();
        return render::json(&serde_json::Value::Array(items));
    }
    for (d, info) in &mine {
        let mut notes = Vec::new();
        if *d == this {
            notes.push("this device");
        }
        if membership.revoked.contains(d) {
            notes.push("revoked");
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  [{}]", notes.join(", "))
        };
        let name = if info.name.is_empty() {
            "A device without a name"
        } else {
            info.name.as_str()
        };
        say!(
            "{name}  {}  added {}{notes}",
            d.fmt_short(),
            render::day(info.added_at)
        );
    }
    Ok(())
}

/// Proposals to remove someone, and where each stands.
fn proposals(
    view: &CircleView,
    membership: &roundtable_core::Membership,
    as_json: bool,
) -> Result<()> {
    let names = |ids: &std::collections::BTreeSet<roundtable_core::MemberId>| {
        ids.iter().map(|m| view.name_of(m)).collect::<Vec<_>>()
    };
    if as_json {
        let items: Vec<_> = membership
            .proposals
            .values()
            .map(|p| {
                json!({
                    "id": p.id.to_string(),
                    "kind": p.kind.as_str(),
                    "target": p.target.to_string(),
                    "by": p.by.to_string(),
                    "reason": p.reason,
                    "state": p.state.as_str(),
                    "consents": p.consents.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                    "electorate": p.electorate.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                    "needed": p.needed,
                })
            })
            .collect();
        return render::json(&json!({ "epoch": membership.epoch, "proposals": items }));
    }
    if membership.proposals.is_empty() {
        say!(
            "No proposals. {}",
            roundtable_core::membership::REMOVAL_RULE
        );
    }
    for p in membership.proposals.values() {
        let what = match p.kind {
            roundtable_core::ProposalKind::Remove => "remove",
            roundtable_core::ProposalKind::Welcome => "welcome back",
            roundtable_core::ProposalKind::Recover => "recognise on a new device",
        };
        say!(
            "{}  {what} {}, proposed by {}  [{}]",
            render::short(&p.id),
            view.name_of(&p.target),
            view.name_of(&p.by),
            p.state.as_str()
        );
        if !p.reason.is_empty() {
            say!("    \"{}\"", p.reason);
        }
        say!(
            "    {} of {} consents needed: {}",
            p.consents.len(),
            p.needed,
            names(&p.consents).join(", ")
        );
    }
    Ok(())
}
