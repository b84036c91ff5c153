//! What the cache does with one request: pass it, bypass the cache (with an
//! `x-cache: BYPASS` header), or look it up under a key built from the
//! method's cache key parameters and, with `per_key`, the caller.

use std::sync::Arc;

use http::{Method, Request};

use super::layer::{Shared, Stores};
use super::store::{CacheKey, CacheStore, push_part};
use super::{CacheKeyParam, CachePolicy, CacheSettings};
use crate::context::{Caller, RequestContext};

/// What the layer does with one request.
pub(super) enum Treatment {
    /// Not cached here at all: straight through, no header.
    Pass,
    /// Caching is on, but not for this request; `true` for an `x-cache` header.
    Bypass(bool),
    /// Look up `key` in `store`; on a miss, store as `policy` says.
    Cache {
        store: Arc<dyn CacheStore>,
        key: CacheKey,
        policy: Arc<CachePolicy>,
        head: bool,
    },
}

/// The method an entry is stored under (HEAD is answered from GET's) and
/// whether the request is a HEAD; `None` when `policy` does not cache `method`.
pub(super) fn keyed_method<'a>(
    policy: &CachePolicy,
    method: &'a Method,
) -> Option<(&'a Method, bool)> {
    if !policy.methods.contains(method) {
        return None;
    }
    if method == Method::HEAD {
        Some((&Method::GET, true))
    } else {
        Some((method, false))
    }
}

impl Shared {
    pub(super) fn treatment<B>(&self, req: &Request<B>) -> Treatment {
        let method = req.method();
        match &self.stores {
            Stores::Standalone(store) => {
                let Some((shown, head)) = keyed_method(&self.policy, method) else {
                    return Treatment::Bypass(self.policy.headers);
                };
                let mut buf = Vec::with_capacity(64);
                push_part(&mut buf, shown.as_str().as_bytes());
                push_part(&mut buf, req.uri().path().as_bytes());
                push_part(&mut buf, req.uri().query().unwrap_or("").as_bytes());
                Treatment::Cache {
                    store: store.clone(),
                    key: buf.into(),
                    policy: self.policy.clone(),
                    head,
                }
            }
            Stores::Off => Treatment::Pass,
            Stores::Gateway(stores) => {
                let Some(ctx) = req.extensions().get::<RequestContext>() else {
                    return Treatment::Pass;
                };
                let endpoint = ctx.endpoint();
                let Some((store, policy)) = stores.at(endpoint.index()) else {
                    return Treatment::Pass;
                };
                let Some((shown, head)) = keyed_method(policy, method) else {
                    return Treatment::Bypass(policy.headers);
                };
                match gateway_key(req, ctx, &endpoint.settings().cache, shown) {
                    Some(key) => Treatment::Cache {
                        store: store.clone(),
                        key,
                        policy: policy.clone(),
                        head,
                    },
                    None => Treatment::Bypass(policy.headers),
                }
            }
        }
    }
}

/// Stage, method, resource, path parameters, the listed parameters and, with
/// `per_key`, the caller. `None` when `per_key` is set and the caller is unknown.
pub(super) fn gateway_key<B>(
    req: &Request<B>,
    ctx: &RequestContext,
    settings: &CacheSettings,
    method: &Method,
) -> Option<CacheKey> {
    let endpoint = ctx.endpoint();
    let mut buf = Vec::with_capacity(128);
    push_part(&mut buf, endpoint.stage().as_bytes());
    push_part(&mut buf, method.as_str().as_bytes());
    push_part(&mut buf, endpoint.resource().as_bytes());
    for (name, value) in ctx.path_params() {
        push_part(&mut buf, name.as_bytes());
        push_part(&mut buf, value.as_bytes());
    }
    for param in &settings.key {
        match param {
            CacheKeyParam::Query(name) => {
                push_part(&mut buf, b"q");
                push_part(&mut buf, name.as_bytes());
                let query = ctx.original_uri().query().unwrap_or("");
                for pair in query.split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if percent_encoding::percent_decode_str(k).eq(name.bytes()) {
                        push_part(&mut buf, v.as_bytes());
                    }
                }
            }
            CacheKeyParam::Header(name) => {
                push_part(&mut buf, b"h");
                push_part(&mut buf, name.as_str().as_bytes());
                for v in req.headers().get_all(name) {
                    push_part(&mut buf, v.as_bytes());
                }
            }
            CacheKeyParam::Path(name) => {
                push_part(&mut buf, b"p");
                push_part(&mut buf, name.as_bytes());
                push_part(&mut buf, ctx.path_param(name).unwrap_or("").as_bytes());
            }
        }
    }
    if settings.per_key {
        let mut anonymous = true;
        for (kind, who) in Caller::of(req.extensions()).partition() {
            push_part(&mut buf, kind.as_bytes());
            push_part(&mut buf, who.as_bytes());
            anonymous = false;
        }
        if anonymous {
            return None;
        }
    }
    Some(buf.into())
}
