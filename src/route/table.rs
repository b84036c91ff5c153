//! The route table: `/{stage}/{resource}` to an endpoint, in one radix lookup.

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderValue, Method};
use percent_encoding::percent_decode_str;

use super::config::Routes;
use super::domain::{Domains, Mapped};
use crate::context::Endpoint;

/// Routes requests to endpoints. Built once from a resolved config.
#[derive(Debug)]
pub(crate) struct RouteTable {
    /// Stage names and their index; stages are few, so a scan beats hashing.
    stages: Box<[Box<str>]>,
    /// Resource templates (matchit syntax) to route index.
    router: matchit::Router<usize>,
    /// Per route: the `Allow` value for a 405.
    allow: Box<[HeaderValue]>,
    /// `endpoints[stage * routes + route]`: explicit methods first, then ANY.
    endpoints: Box<[Box<[Arc<Endpoint>]>]>,
    routes: usize,
    /// Custom domains and their base path mappings.
    domains: Arc<Domains>,
    /// Whether the execute-api form (`/{stage}/...` on any other host) is
    /// served (`disable_execute_api_endpoint: false`, the default).
    execute_api: bool,
}

/// The outcome of a lookup.
#[derive(Debug)]
pub(crate) enum Lookup<'t> {
    /// The request goes to `endpoint`; the inner service sees the path from
    /// byte `strip` on; `values` are the decoded path parameters.
    Found {
        endpoint: &'t Arc<Endpoint>,
        strip: usize,
        values: PathValues,
    },
    /// No stage or no resource matches.
    NotFound,
    /// A custom domain no base path of which takes the path, or the
    /// execute-api form of an API that disables it: 403 `UNMAPPED_REQUEST`.
    Unmapped,
    /// The resource exists without this method.
    MethodNotAllowed(&'t HeaderValue),
    /// A path parameter does not decode to UTF-8.
    BadParameter,
}

impl RouteTable {
    pub(crate) fn new(resolved: &Routes) -> Self {
        let mut router = matchit::Router::new();
        for (i, r) in resolved.routes.iter().enumerate() {
            // Validation inserted the same templates into a probe router, so
            // this cannot conflict; a failure would only lose that route.
            let _ = router.insert(r.matchit.clone(), i);
        }
        let endpoints = resolved
            .stages
            .iter()
            .flat_map(|s| s.endpoints.iter().map(|e| e.clone().into_boxed_slice()))
            .collect();
        Self {
            stages: resolved
                .stages
                .iter()
                .map(|s| Box::from(&*s.name))
                .collect(),
            router,
            allow: resolved.routes.iter().map(|r| r.allow.clone()).collect(),
            endpoints,
            routes: resolved.routes.len(),
            domains: resolved.domains.clone(),
            execute_api: resolved.execute_api,
        }
    }

    /// Whether a lookup reads the request's host (some domain is
    /// configured).
    pub(crate) fn reads_host(&self) -> bool {
        !self.domains.is_empty()
    }

    /// Finds the endpoint for a request: by custom domain when `host` (the
    /// `Host` value) is one, else in the execute-api form.
    pub(crate) fn lookup_request(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
    ) -> Lookup<'_> {
        if !self.domains.is_empty()
            && let Some(found) = host.and_then(|h| self.domains.find(h, path))
        {
            return match found {
                Mapped::To { stage, strip } => self.lookup_at(stage, method, path, strip),
                Mapped::Unmapped => Lookup::Unmapped,
            };
        }
        if !self.execute_api {
            return Lookup::Unmapped;
        }
        self.lookup(method, path)
    }

    /// An endpoint of the stage a request names (by its domain's base path
    /// mapping, else by its path's first segment), if there is such a
    /// stage: what a request refused by routing knows of its stage.
    pub(crate) fn stage_of(&self, host: Option<&str>, path: &str) -> Option<&Arc<Endpoint>> {
        let stage = match host.and_then(|h| self.domains.find(h, path)) {
            Some(Mapped::To { stage, .. }) => stage,
            Some(Mapped::Unmapped) => return None,
            None if !self.execute_api => return None,
            None => {
                let after_slash = path.strip_prefix('/')?;
                let name = after_slash.split('/').next()?;
                self.stages.iter().position(|s| **s == *name)?
            }
        };
        self.endpoints
            .get(stage * self.routes..(stage + 1) * self.routes)?
            .iter()
            .find_map(|list| list.first())
    }

    /// Finds the endpoint for `method` and the raw (still percent-encoded) `path`.
    pub(crate) fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let Some(after_slash) = path.strip_prefix('/') else {
            return Lookup::NotFound;
        };
        let stage_len = after_slash.find('/').unwrap_or(after_slash.len());
        let stage_name = &after_slash[..stage_len];
        let Some(stage) = self.stages.iter().position(|s| **s == *stage_name) else {
            return Lookup::NotFound;
        };
        self.lookup_at(stage, method, path, 1 + stage_len)
    }

    /// Finds the endpoint of stage `stage` for `method` and the part of
    /// `path` after its first `strip` bytes (a stage or a base path).
    /// Parameter values are held as spans of the whole `path`.
    fn lookup_at(&self, stage: usize, method: &Method, path: &str, strip: usize) -> Lookup<'_> {
        let Some(rest) = path.get(strip..) else {
            return Lookup::NotFound;
        };
        let rest = if rest.is_empty() { "/" } else { rest };
        // A trailing slash is ignored (`/pets/` is `/pets`), unless the route
        // matches with it (a greedy parameter keeps it).
        let matched = match self.router.at(rest) {
            Ok(m) => m,
            Err(_) => match rest.strip_suffix('/') {
                Some(trimmed) if !trimmed.is_empty() => match self.router.at(trimmed) {
                    Ok(m) => m,
                    Err(_) => return Lookup::NotFound,
                },
                _ => return Lookup::NotFound,
            },
        };
        let route = *matched.value;
        let Some(list) = self.endpoints.get(stage * self.routes + route) else {
            return Lookup::NotFound;
        };
        let endpoint = list
            .iter()
            .find(|e| e.method.as_ref() == Some(method))
            .or_else(|| list.iter().find(|e| e.method.is_none()));
        let Some(endpoint) = endpoint else {
            return match self.allow.get(route) {
                Some(allow) => Lookup::MethodNotAllowed(allow),
                None => Lookup::NotFound,
            };
        };
        let mut values = PathValues::default();
        for (_, raw) in matched.params.iter() {
            match percent_decode_str(raw).decode_utf8() {
                Ok(Cow::Borrowed(s)) => values.push(Value::span(path, s)),
                Ok(Cow::Owned(s)) => values.push(Value::decoded(path, raw, s)),
                Err(_) => return Lookup::BadParameter,
            }
        }
        Lookup::Found {
            endpoint,
            strip,
            values,
        }
    }
}

/// Parameters held in place, without an allocation; more spill to the heap.
const INLINE_VALUES: usize = 4;

/// A request's path parameter values, in path order: where a value needs no
/// decoding (the usual case), only where it sits in the request's path, so
/// routing allocates nothing for it; a percent-decoded value is held.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathValues {
    /// The first values.
    inline: [Value; INLINE_VALUES],
    /// How many of `inline` are used.
    len: usize,
    /// Values past the first [`INLINE_VALUES`].
    spilled: Vec<Value>,
}

/// One path parameter value.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// Bytes `start .. end` of the request's path (the original one, stage
    /// prefix included), which decode to themselves.
    Span(u32, u32),
    /// The decoded value, and where its encoded form sits in the path
    /// (`0, 0` when it could not be placed).
    Decoded(u32, u32, Box<str>),
}

impl Default for Value {
    fn default() -> Self {
        Self::Span(0, 0)
    }
}

impl Value {
    /// `value`, a slice of `path` (matchit's parameters borrow the path
    /// they matched), as a span of it; held as a copy should it not be one.
    fn span(path: &str, value: &str) -> Self {
        let start = (value.as_ptr() as usize).wrapping_sub(path.as_ptr() as usize);
        let end = start.wrapping_add(value.len());
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(s), Ok(e)) if path.get(start..end) == Some(value) => Self::Span(s, e),
            _ => Self::Decoded(0, 0, value.into()),
        }
    }

    /// A value that decoding changed: `decoded`, from `raw`, a slice of
    /// `path`.
    fn decoded(path: &str, raw: &str, decoded: String) -> Self {
        match Self::span(path, raw) {
            Self::Span(s, e) => Self::Decoded(s, e, decoded.into_boxed_str()),
            _ => Self::Decoded(0, 0, decoded.into_boxed_str()),
        }
    }
}

impl PathValues {
    fn push(&mut self, value: Value) {
        if self.len < INLINE_VALUES {
            self.inline[self.len] = value;
            self.len += 1;
        } else {
            self.spilled.push(value);
        }
    }

    /// Value `i`, read against `path`: the request's original path.
    pub(crate) fn get<'a>(&'a self, i: usize, path: &'a str) -> Option<&'a str> {
        let value = if i < self.len {
            &self.inline[i]
        } else {
            self.spilled.get(i - INLINE_VALUES)?
        };
        match value {
            Value::Span(s, e) => path.get(*s as usize..*e as usize),
            Value::Decoded(_, _, d) => Some(d),
        }
    }

    /// Value `i` as the client sent it (still percent-encoded), read
    /// against `path`.
    pub(crate) fn raw<'a>(&'a self, i: usize, path: &'a str) -> Option<&'a str> {
        let value = if i < self.len {
            &self.inline[i]
        } else {
            self.spilled.get(i - INLINE_VALUES)?
        };
        match value {
            Value::Span(s, e) | Value::Decoded(s, e, _) => path.get(*s as usize..*e as usize),
        }
    }
}
