//! The usage endpoint: see [the module docs](super#the-usage-endpoint).

use std::sync::Arc;

use http::{HeaderValue, Response};
use serde_json::{Value, json};

use super::{PlanManager, UsageRecords};
use crate::Body;
use crate::clock::Clock;
use crate::keys::{KeyHasher, KeyStore, is_valid_key};
use crate::response::{GatewayResponseKind, GatewayResponses};

/// What the endpoint reads.
pub(crate) struct OwnUsage {
    pub(crate) keys: Arc<dyn KeyStore>,
    pub(crate) hasher: KeyHasher,
    pub(crate) plans: PlanManager,
    pub(crate) records: UsageRecords,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) responses: GatewayResponses,
}

impl OwnUsage {
    /// The answer for the key `value` sent (`None`: no key sent).
    pub(crate) async fn answer(self, value: Option<String>) -> Response<Body> {
        let refuse = |kind| self.responses.respond(kind);
        let Some(value) = value.filter(|v| is_valid_key(v)) else {
            return refuse(GatewayResponseKind::InvalidApiKey);
        };
        let record = match self.keys.get(&self.hasher.digest(&value)).await {
            Ok(Some(r)) if r.usable_at(self.clock.utc()) => r,
            Ok(_) => return refuse(GatewayResponseKind::InvalidApiKey),
            Err(e) => {
                tracing::warn!(error = %e, "usage endpoint: the key store failed");
                return refuse(GatewayResponseKind::BackendUnavailable);
            }
        };
        let mut plans = Vec::new();
        for name in &record.plans {
            let Some(plan) = self.plans.get(name) else {
                continue;
            };
            let mut out = json!({ "id": &**name });
            if let Some(t) = &plan.throttle {
                out["throttle"] = json!({ "rateLimit": t.rate, "burstLimit": t.burst });
                if t.mode == Some(crate::throttle::LimitMode::Shadow) {
                    out["throttle"]["mode"] = json!("shadow");
                }
            }
            if let Some(q) = &plan.quota {
                let counted = match self.records.remaining(&record.id, name).await {
                    Ok(r) => self.records.used(&record.id, name).await.map(|u| (u, r)),
                    Err(e) => Err(e),
                };
                let (used, remaining) = match counted {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "usage endpoint: the counter store failed");
                        return refuse(GatewayResponseKind::BackendUnavailable);
                    }
                };
                out["quota"] = json!({
                    "limit": q.limit,
                    "period": q.period.as_str().to_ascii_uppercase(),
                    "used": used,
                    "remaining": remaining,
                });
                if q.mode == crate::throttle::LimitMode::Shadow {
                    // Not enforced: `remaining` 0 refuses nothing.
                    out["quota"]["mode"] = json!("shadow");
                }
            }
            plans.push(out);
        }
        let body =
            json!({ "keyId": &*record.id, "name": record.name, "plans": Value::Array(plans) });
        let mut res = Response::new(Body::from(body.to_string()));
        let headers = res.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        res
    }
}
