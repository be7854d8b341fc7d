//! Where the platform's events go: webhook endpoints, each with the events it listens to
//! and a signing secret shown once and kept encrypted.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use sqlx::Row;

use super::PlatformEvent;
use crate::crypto::{associated_data, TokenCipher};
use crate::db::Database;
use crate::time::Clock;

/// A webhook endpoint as operators see it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: i64,
    pub url: String,
    pub events: Vec<PlatformEvent>,
    pub created_by: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub delivered: i64,
    pub pending: i64,
    pub failed: i64,
}

/// A signing secret as shown once (`whsec_…`, Standard Webhooks' form). Prints redacted.
pub struct SigningSecret(String);

impl SigningSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("the URL must be http or https with a host, like https://platform.example.com/hooks")]
    BadUrl,
    #[error("choose at least one event")]
    NoEvents,
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// The target is inside the network, or not https (see [`super::targets`]).
    #[error("{0}")]
    Refused(#[from] super::targets::TargetRefused),
    #[error("no such endpoint or delivery")]
    NotFound,
    #[error("database error")]
    Database,
}

crate::database_errors_are_logged!(EndpointError => EndpointError::Database, "webhook endpoints");

/// Checks an endpoint URL: `http` or `https`, a host, no credentials, at most 2,000 chars.
pub fn parse_url(text: &str) -> Result<url::Url, EndpointError> {
    let text = text.trim();
    let url = url::Url::parse(text).map_err(|_| EndpointError::BadUrl)?;
    let acceptable = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && text.len() <= 2000;
    acceptable.then_some(url).ok_or(EndpointError::BadUrl)
}

pub fn parse_events<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<PlatformEvent>, EndpointError> {
    let mut events = Vec::new();
    for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
        let event = PlatformEvent::parse(name).ok_or_else(|| EndpointError::UnknownEvent(name.to_string()))?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    if events.is_empty() {
        return Err(EndpointError::NoEvents);
    }
    Ok(events)
}

pub(super) fn secret_aad(endpoint_id: i64) -> Vec<u8> {
    associated_data("webhook_endpoints", endpoint_id, "secret")
}

/// The platform's webhook endpoints and their deliveries.
#[derive(Clone)]
pub struct WebhookEndpoints {
    pub(super) db: Database,
    pub(super) clock: Clock,
    cipher: Arc<TokenCipher>,
    targets: super::targets::TargetPolicy,
}

impl fmt::Debug for WebhookEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpoints").finish_non_exhaustive()
    }
}

impl WebhookEndpoints {
    pub fn new(
        db: Database,
        clock: Clock,
        cipher: Arc<TokenCipher>,
        targets: super::targets::TargetPolicy,
    ) -> WebhookEndpoints {
        WebhookEndpoints {
            db,
            clock,
            cipher,
            targets,
        }
    }

    /// Registers an endpoint; its signing secret is returned here and nowhere else, ever.
    pub async fn create(
        &self,
        url: &str,
        events: &[PlatformEvent],
        created_by: &str,
    ) -> Result<(i64, SigningSecret), EndpointError> {
        let url = parse_url(url)?;
        if events.is_empty() {
            return Err(EndpointError::NoEvents);
        }
        self.targets.check(&url).await?;
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(raw));
        let names = events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(" ");
        let mut tx = self.db.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_endpoints (url, events, secret, key_id, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(url.as_str())
        .bind(&names)
        .bind(Vec::<u8>::new())
        .bind(self.cipher.current_key_id())
        .bind(created_by)
        .bind(self.clock.now())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE webhook_endpoints SET secret = $1 WHERE id = $2")
            .bind(self.cipher.encrypt(secret.as_bytes(), &secret_aad(id)))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((id, SigningSecret(secret)))
    }

    /// Every endpoint with its delivery counts, newest first.
    pub async fn list(&self) -> Result<Vec<Endpoint>, EndpointError> {
        let rows = sqlx::query(
            "SELECT e.id, e.url, e.events, e.created_by, e.created_at, e.disabled_at, \
             (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'delivered') AS delivered, \
             (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending') AS pending, \
             (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'failed') AS failed \
             FROM webhook_endpoints e ORDER BY e.id DESC",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let events: String = r.try_get("events")?;
                Ok(Endpoint {
                    id: r.try_get("id")?,
                    url: r.try_get("url")?,
                    events: events.split_whitespace().filter_map(PlatformEvent::parse).collect(),
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                    disabled_at: r.try_get("disabled_at")?,
                    delivered: r.try_get("delivered")?,
                    pending: r.try_get("pending")?,
                    failed: r.try_get("failed")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(EndpointError::from)
    }

    /// Stops delivering to an endpoint (its history stays).
    pub async fn disable(&self, id: i64) -> Result<(), EndpointError> {
        let done = sqlx::query("UPDATE webhook_endpoints SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL")
            .bind(self.clock.now())
            .bind(id)
            .execute(self.db.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(EndpointError::NotFound);
        }
        sqlx::query("UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint disabled' WHERE endpoint_id = $1 AND status = 'pending'")
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_events_are_checked() {
        assert!(parse_url("https://platform.example.com/hooks").is_ok());
        assert!(parse_url("http://127.0.0.1:9000/x").is_ok());
        for bad in [
            "ftp://x.example/",
            "javascript:alert(1)",
            "https://user:pw@x.example/",
            "not a url",
            "https://",
        ] {
            assert_eq!(parse_url(bad), Err(EndpointError::BadUrl), "{bad}");
        }
        assert_eq!(
            parse_events(["connection.connected", "connection.recovered", "connection.connected"]),
            Ok(vec![PlatformEvent::Connected, PlatformEvent::Recovered])
        );
        assert_eq!(parse_events([]), Err(EndpointError::NoEvents));
        assert!(matches!(
            parse_events(["connection.exploded"]),
            Err(EndpointError::UnknownEvent(_))
        ));
        for event in PlatformEvent::ALL {
            assert_eq!(PlatformEvent::parse(event.as_str()), Some(event));
        }
    }
}
