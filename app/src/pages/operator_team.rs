use leptos::prelude::*;

use crate::components::{loaded, DataTable, FormCard, OperatorHeading, PostButton, PostOutcome, QueryNotice};
use crate::dto::TeamView;
use crate::operator_api::load_team;
use crate::paths::{self, Notice};

const NOTICES: &[Notice] = &[
    Notice::Invited,
    Notice::OperatorRemoved,
    Notice::SessionsEnded,
    Notice::InvitationCancelled,
];

/// Operators (second factor, last log-in, sessions), invitations, and the security log.
#[component]
pub fn OperatorTeamPage() -> impl IntoView {
    let team = Resource::new(|| (), |_| load_team());
    view! {
        <OperatorHeading title="Team" current=paths::OPERATOR_TEAM />
        <p class="muted">
            "Every operator signs in with a password and a second factor. Creating keys, registering \
             endpoints, exporting CSV, creating connect links, inviting and removing operators each ask \
             for a fresh code."
        </p>
        <QueryNotice notices=NOTICES />
        <PostOutcome />
        <FormCard id="invite" heading="Invite an operator" action=paths::OPERATOR_TEAM_INVITE submit="Send invitation">
            <label>
                "Email"
                <input type="email" name="email" required maxlength="254" autocomplete="off" />
            </label>
        </FormCard>
        <Suspense fallback=|| view! { <p class="muted">"Loading the team…"</p> }>
            {move || Suspend::new(async move { loaded(team.await, |team| view! { <Team team /> }.into_any()) })}
        </Suspense>
    }
}

#[component]
fn Team(team: TeamView) -> impl IntoView {
    let last = team.members.len() <= 1;
    let members = team
        .members
        .into_iter()
        .map(|m| {
            let you = m.id == team.me;
            let remove = (!last).then(|| {
                view! {
                    <PostButton
                        action=paths::operator_team_remove(m.id)
                        label="Remove"
                        tone="danger"
                        name=format!("Remove {}", m.email)
                    />
                }
            });
            view! {
                <tr data-operator=m.email.clone()>
                    <td>{m.email.clone()}{you.then(|| view! { <small class="muted">" (you)"</small> })}</td>
                    <td>{if m.second_factor { "on" } else { "not set up yet" }}</td>
                    <td>{m.last_login.unwrap_or_else(|| "never".into())}</td>
                    <td data-sessions=m.active_sessions>{m.active_sessions}</td>
                    <td class="actions">
                        <PostButton
                            action=paths::operator_team_log_out(m.id)
                            label="Log out everywhere"
                            tone="secondary"
                            name=format!("Log out {} everywhere", m.email)
                        />
                        {remove}
                    </td>
                </tr>
            }
            .into_any()
        })
        .collect();
    let invitations = team
        .invitations
        .into_iter()
        .map(|i| {
            view! {
                <tr data-invitation=i.email.clone()>
                    <td>{i.email.clone()}</td>
                    <td>{i.invited_by}</td>
                    <td>{i.expires}</td>
                    <td>
                        <PostButton
                            action=paths::operator_invitation_cancel(i.id)
                            label="Cancel"
                            tone="secondary"
                            name=format!("Cancel the invitation of {}", i.email)
                        />
                    </td>
                </tr>
            }
            .into_any()
        })
        .collect();
    let events = team
        .events
        .into_iter()
        .map(|e| {
            view! {
                <tr data-security-event=e.kind>
                    <td>{e.at}</td>
                    <td>{e.label}</td>
                    <td>{e.actor.unwrap_or_default()}</td>
                    <td>{e.subject.unwrap_or_default()}</td>
                    <td>{e.ip.unwrap_or_default()}</td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! {
        <DataTable
            caption="Operators"
            columns=&["Operator", "Second factor", "Last log-in", "Active sessions", ""]
            empty="No operators."
            rows=members
        />
        <DataTable
            caption="Open invitations"
            columns=&["Email", "Invited by", "Link works until", ""]
            empty="No open invitations."
            rows=invitations
        />
        <DataTable
            caption="Security log (newest 100)"
            columns=&["When", "What", "Who", "Subject", "Address"]
            empty="Nothing logged yet."
            rows=events
        />
    }
}
