//! Simulated Airwallex accounts, with the fields `GET /api/v1/account/` returns.

use serde_json::{json, Value};

use crate::secret::random_urlsafe;
use crate::time::rfc3339;

/// The preset accounts every simulator starts with, by id.
pub const HARBOUR_COFFEE: &str = "acct_hX2kq9TfRz3Lw8VbN4aP1c";
/// Its business name has `&` and `<…>` in it, to prove escaping.
pub const MAPLE_FINCH: &str = "acct_Mp7sD2wQe5Yt9UcK3nB6xJ";
pub const LIM_WEI_LING: &str = "acct_Qa4Lr8Gv1Hs6Zn2Tm9Wd5E";

#[derive(Clone, Debug)]
pub struct SimAccount {
    pub id: String,
    pub nickname: String,
    pub status: &'static str,
    pub created_at: i64,
    pub email: String,
    pub mobile: Option<String>,
    pub legal_entity_type: &'static str,
    pub business_name: String,
    pub trading_name: Option<String>,
    pub business_structure: Option<&'static str>,
    pub url: Option<String>,
    pub address: [&'static str; 5],
    pub next_action: Option<&'static str>,
}

impl SimAccount {
    /// The account as Airwallex's account API shapes it.
    pub fn to_json(&self) -> Value {
        let [line1, suburb, state, postcode, country] = self.address;
        let mut business = json!({
            "business_name": self.business_name,
            "business_address": {
                "address_line1": line1,
                "suburb": suburb,
                "state": state,
                "postcode": postcode,
                "country_code": country,
            },
        });
        if let Some(trading) = &self.trading_name {
            business["business_name_trading"] = json!(trading);
        }
        if let Some(structure) = self.business_structure {
            business["business_structure"] = json!(structure);
        }
        if let Some(url) = &self.url {
            business["url"] = json!(url);
        }
        let mut account = json!({
            "id": self.id,
            "nickname": self.nickname,
            "status": self.status,
            "created_at": rfc3339(self.created_at),
            "primary_contact": { "email": self.email },
            "account_details": {
                "legal_entity_type": self.legal_entity_type,
                "business_details": business,
            },
        });
        if let Some(mobile) = &self.mobile {
            account["primary_contact"]["mobile"] = json!(mobile);
        }
        if let Some(action) = self.next_action {
            account["next_action"] = json!({ "type": action });
        }
        account
    }

    /// A new account for a merchant who signs up during consent (`sign_up=true`).
    pub fn signed_up(business_name: &str, email: &str, now: i64) -> SimAccount {
        SimAccount {
            id: format!("acct_{}", random_urlsafe(12).replace(['-', '_'], "x")),
            nickname: business_name.to_string(),
            status: "CREATED",
            created_at: now,
            email: email.to_string(),
            mobile: None,
            legal_entity_type: "BUSINESS",
            business_name: business_name.to_string(),
            trading_name: None,
            business_structure: None,
            url: None,
            address: ["", "", "", "", ""],
            next_action: Some("KYC_REQUIRED"),
        }
    }
}

/// The accounts every simulator starts with.
pub fn preset_accounts(now: i64) -> Vec<SimAccount> {
    const DAY: i64 = 86_400;
    vec![
        SimAccount {
            id: HARBOUR_COFFEE.into(),
            nickname: "Harbour Coffee".into(),
            status: "ACTIVE",
            created_at: now - 412 * DAY,
            email: "finance@harbourcoffee.com.au".into(),
            mobile: Some("+61 412 555 018".into()),
            legal_entity_type: "BUSINESS",
            business_name: "Harbour Coffee Roasters Pty Ltd".into(),
            trading_name: Some("Harbour Coffee".into()),
            business_structure: Some("COMPANY"),
            url: Some("https://harbourcoffee.example".into()),
            address: ["12 Wharf Street", "Pyrmont", "NSW", "2009", "AU"],
            next_action: None,
        },
        SimAccount {
            id: MAPLE_FINCH.into(),
            nickname: "Maple & Finch".into(),
            status: "ACTIVE",
            created_at: now - 188 * DAY,
            email: "accounts@maplefinch.co.uk".into(),
            mobile: Some("+44 20 7946 0321".into()),
            legal_entity_type: "BUSINESS",
            business_name: "Maple & Finch <Trading> Ltd".into(),
            trading_name: Some("Maple & Finch".into()),
            business_structure: Some("COMPANY"),
            url: Some("https://maplefinch.example".into()),
            address: ["4 O'Connell Yard", "Shoreditch", "London", "E1 6QL", "GB"],
            next_action: None,
        },
        SimAccount {
            id: LIM_WEI_LING.into(),
            nickname: "Lim Wei Ling".into(),
            status: "ACTION_REQUIRED",
            created_at: now - 21 * DAY,
            email: "weiling.lim@example.sg".into(),
            mobile: Some("+65 8123 4567".into()),
            legal_entity_type: "INDIVIDUAL",
            business_name: "Lim Wei Ling".into(),
            trading_name: Some("Wei Ling Studio".into()),
            business_structure: Some("SOLE_PROPRIETOR"),
            url: None,
            address: ["88 Tanjong Pagar Road", "", "", "088509", "SG"],
            next_action: Some("UPLOAD_DOCUMENTS"),
        },
    ]
}
