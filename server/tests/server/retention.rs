//! What is kept only for a while is pruned after RETENTION_DAYS (finished deliveries and
//! their events, sent emails); the audit trails stay.

use std::time::Duration;

use awx_onboard::both_engines;
use awx_onboard::db::Engine;
use awx_onboard::platform::outbox::PlatformEvent;
use awx_onboard::testing::smtp::SmtpSink;
use awx_onboard_server::testing::receiver::WebhookReceiver;
use awx_onboard_server::testing::{TestApp, HARBOUR_COFFEE, MAPLE_FINCH};

async fn finished_work_is_pruned_and_the_audit_is_kept(engine: Engine) {
    let sink = SmtpSink::start().await.unwrap();
    let app = TestApp::spawn_with_mail(engine, &sink.url(), &[("RETENTION_DAYS", "30")]).await;
    assert_eq!(app.services().retention.days(), 30);
    let (_, receiver) = WebhookReceiver::subscribed(app.services(), &PlatformEvent::ALL).await;
    app.connected_merchant("ana@example.com", MAPLE_FINCH).await;
    receiver
        .wait_for("connected", Duration::from_secs(10), |r| {
            r.iter().any(|r| r.answered == 204)
        })
        .await;
    assert_eq!(app.sim().revoke_account(MAPLE_FINCH), 1);
    sink.wait_for(1, Duration::from_secs(15)).await;
    receiver
        .wait_for("needs_reconnect", Duration::from_secs(10), |r| {
            r.iter().filter(|r| r.answered == 204).count() >= 2
        })
        .await;
    let events_before = app.row_count("connection_events").await;
    assert!(app.row_count("webhook_deliveries").await >= 2);

    // Within the retention nothing goes.
    app.services().clock.advance(29 * 86_400);
    let pruned = app.services().retention.prune().await.unwrap();
    assert_eq!(
        (pruned.deliveries, pruned.events, pruned.emails),
        (0, 0, 0),
        "{pruned:?}"
    );
    assert!(app.row_count("mail_outbox").await >= 1);

    // Past it: finished deliveries, their events and sent emails go; work still to do and
    // the audit trails stay.
    app.connected_merchant("ben@example.com", HARBOUR_COFFEE).await;
    app.services().clock.advance(2 * 86_400);
    let pruned = app.services().retention.prune().await.unwrap();
    assert!(
        pruned.deliveries >= 2 && pruned.events >= 2 && pruned.emails >= 1,
        "{pruned:?}"
    );
    let recent = app.row_count("webhook_deliveries").await;
    assert!(recent >= 1, "Ben's recent delivery is kept");
    assert!(
        app.row_count("connection_events").await >= events_before,
        "the audit stays"
    );
    app.stop().await;
}
both_engines!(finished_work_is_pruned_and_the_audit_is_kept);
