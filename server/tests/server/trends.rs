//! The operators' trends, checked against a history the test writes: status per day from
//! the event log (replayed, then rolled up), refreshes per hour by outcome, refresh-token
//! expiries ahead, on the page as SVG with the same numbers in its table.

use awx_onboard::db::Engine;
use awx_onboard::testing::insert_merchant;
use awx_onboard::time::human_datetime;
use awx_onboard_server::testing::TestApp;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

struct Fixture<'a> {
    app: &'a TestApp,
}

impl Fixture<'_> {
    async fn connection(&self, name: &str, status: &str, connected_at: i64, refresh_expires_at: Option<i64>) -> i64 {
        let db = self.app.services().db.pool();
        let merchant = insert_merchant(&self.app.services().db, &format!("{name}@example.com")).await;
        sqlx::query_scalar(
            "INSERT INTO connections (merchant_id, status, business_name, refresh_expires_at, connected_at, \
             last_activity_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 0, 0, 0) RETURNING id",
        )
        .bind(merchant)
        .bind(status)
        .bind(name)
        .bind(refresh_expires_at)
        .bind(connected_at)
        .fetch_one(db)
        .await
        .unwrap()
    }

    async fn event(&self, connection: i64, kind: &str, at: i64) {
        sqlx::query(
            "INSERT INTO connection_events (connection_id, kind, reason, actor, created_at) VALUES ($1, $2, NULL, 'test', $3)",
        )
        .bind(connection)
        .bind(kind)
        .bind(at)
        .execute(self.app.services().db.pool())
        .await
        .unwrap();
    }
}

fn day_label(at: i64) -> String {
    human_datetime(at).split(',').next().unwrap().to_string()
}

/// The rows of the page's table for one chart: label → numbers.
fn table(page: &str, chart: &str) -> Vec<(String, Vec<i64>)> {
    let start = page
        .find(&format!("data-chart=\"{chart}\""))
        .unwrap_or_else(|| panic!("chart {chart} on the page"));
    let html = &page[start..];
    let html = &html[..html.find("</table>").unwrap()];
    let mut clean = String::new();
    let mut rest = html;
    while let Some(i) = rest.find("<!--") {
        clean.push_str(&rest[..i]);
        rest = &rest[i + rest[i..].find("-->").unwrap() + 3..];
    }
    clean.push_str(rest);
    clean
        .split("<tr>")
        .filter(|row| row.contains("scope=\"row\""))
        .map(|row| {
            let label = row
                .split("scope=\"row\">")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
                .to_string();
            let numbers = row
                .split("<td>")
                .skip(1)
                .map(|cell| cell.split('<').next().unwrap().trim().parse::<i64>().unwrap())
                .collect();
            (label, numbers)
        })
        .collect()
}

fn row<'a>(rows: &'a [(String, Vec<i64>)], label: &str) -> &'a [i64] {
    &rows
        .iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("a row for {label}: {rows:?}"))
        .1
}

async fn charts_match_the_history(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let f = Fixture { app: &app };
    let now = app.services().clock.now();
    let today = now - now.rem_euclid(DAY);
    let hour = now - now.rem_euclid(HOUR);
    let at = |days_ago: i64| today - days_ago * DAY + HOUR;

    let c1 = f
        .connection("c1", "connected", at(10), Some(today + 10 * DAY + HOUR))
        .await;
    f.event(c1, "connected", at(10)).await;
    let c2 = f.connection("c2", "needs_reconnect", at(5), None).await;
    f.event(c2, "connected", at(5)).await;
    f.event(c2, "revoked", at(2)).await;
    let c3 = f.connection("c3", "disconnected", at(20), None).await;
    f.event(c3, "connected", at(20)).await;
    f.event(c3, "disconnected", at(3)).await;
    let c4 = f.connection("c4", "connected", at(1), Some(now + 3 * DAY)).await;
    f.event(c4, "connected", at(1)).await;
    // c5 refreshes, then is rejected an hour ago.
    let c5 = f.connection("c5", "needs_reconnect", at(4), None).await;
    f.event(c5, "connected", at(4)).await;
    for _ in 0..4 {
        f.event(c5, "refreshed", hour - 3 * HOUR + 60).await;
    }
    f.event(c5, "refresh_failed", hour - 3 * HOUR + 120).await;
    f.event(c5, "refreshed", hour - 50 * HOUR).await;
    f.event(c5, "needs_reconnect", hour - HOUR + 60).await;
    // Events that do not change a status.
    f.event(c1, "checked", at(7)).await;

    let expected_days = [
        (25, [0, 0, 0]),
        (20, [1, 0, 0]),
        (10, [2, 0, 0]),
        (5, [3, 0, 0]),
        (4, [4, 0, 0]),
        (3, [3, 0, 1]),
        (2, [2, 1, 1]),
        (0, [2, 2, 1]),
    ];
    // Twice: the first load replays the log and rolls the settled days up, the second reads them.
    for round in 0..2 {
        let data = app.services().trends.load().await.unwrap();
        assert_eq!(data.status_days.len(), 30);
        for (days_ago, [connected, needs, disconnected]) in expected_days {
            let day = data.status_days[29 - days_ago as usize];
            assert_eq!(day.day, today - days_ago * DAY);
            assert_eq!(
                (day.connected, day.needs_reconnect, day.disconnected),
                (connected, needs, disconnected),
                "{days_ago} days ago, round {round}"
            );
        }
        assert_eq!(data.refresh_hours.len(), 48);
        let three = data.refresh_hours[47 - 3];
        assert_eq!(
            (three.hour, three.ok, three.transient, three.rejected),
            (hour - 3 * HOUR, 4, 1, 0)
        );
        let one = data.refresh_hours[47 - 1];
        assert_eq!((one.ok, one.transient, one.rejected), (0, 0, 1));
        let totals = data
            .refresh_hours
            .iter()
            .fold((0, 0, 0), |(a, b, c), h| (a + h.ok, b + h.transient, c + h.rejected));
        assert_eq!(totals, (4, 1, 1), "the refresh 50 hours ago is outside");
        assert_eq!(data.expiry_days.len(), 60);
        assert_eq!(data.expiry_days[3].count, 1);
        assert_eq!(data.expiry_days[10].count, 1);
        assert_eq!(data.expiry_days.iter().map(|d| d.count).sum::<i64>(), 2);
    }
    let rolled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM trend_status_days")
        .fetch_one(app.services().db.pool())
        .await
        .unwrap();
    assert!(rolled >= 28, "settled days are rolled up ({rolled})");

    // The page: SVG with a title and a description, and the same numbers in its tables.
    app.create_operator("ops@example.com").await;
    let operator = app.logged_in("ops@example.com").await;
    let page = operator.page("/operator").await;
    for chart in ["trend-status", "trend-refreshes", "trend-expiry"] {
        assert!(
            page.contains(&format!("aria-labelledby=\"{chart}-title {chart}-desc\"")),
            "{chart}"
        );
        assert!(page.contains(&format!("<title id=\"{chart}-title\">")), "{chart}");
    }
    let status = table(&page, "trend-status");
    assert_eq!(status.len(), 30);
    for (days_ago, numbers) in expected_days {
        assert_eq!(
            row(&status, &day_label(today - days_ago * DAY)),
            numbers,
            "{days_ago} days ago"
        );
    }
    let refreshes = table(&page, "trend-refreshes");
    assert_eq!(row(&refreshes, &human_datetime(hour - 3 * HOUR)), [4, 1, 0]);
    let expiry = table(&page, "trend-expiry");
    assert_eq!(row(&expiry, &day_label(today + 3 * DAY)), [1]);
    assert!(
        page.contains("1 refresh token ends within 7 days"),
        "operators see the warning"
    );
    app.stop().await;
}
awx_onboard::both_engines!(charts_match_the_history);
