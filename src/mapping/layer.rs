//! `MappingLayer` and its service: which mapping applies to a request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use ipnet::IpNet;
use tower::{Layer, Service};

use super::binary::BinaryMediaTypes;
use super::compile::CompiledMapping;
use super::run::run;
use crate::body::{Body, BoxError};
use crate::context::PerEndpoint;
use crate::response::GatewayResponses;

/// Applies mappings; see the [module docs](crate::mapping).
#[derive(Clone)]
#[must_use]
pub struct MappingLayer {
    shared: Arc<Shared>,
}

pub(super) struct Shared {
    mappings: Mappings,
    pub(super) responses: GatewayResponses,
    pub(super) trusted: Arc<[IpNet]>,
}

enum Mappings {
    One(MethodMapping),
    ByEndpoint(PerEndpoint<MethodMapping>),
    Off,
}

/// One method's mapping and the media types it treats as binary.
#[derive(Clone)]
pub(crate) struct MethodMapping {
    pub(crate) mapping: Arc<CompiledMapping>,
    /// `None` when no type is binary.
    pub(crate) binary: Option<Arc<BinaryMediaTypes>>,
}

impl fmt::Debug for MappingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.shared.mappings {
            Mappings::One(_) => "one",
            Mappings::ByEndpoint(_) => "gateway",
            Mappings::Off => "off",
        };
        f.debug_struct("MappingLayer")
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

impl MappingLayer {
    /// Whether requests to endpoint `index` are mapped: `false` when the
    /// layer passes them through untouched.
    pub(crate) fn covers(&self, index: usize) -> bool {
        match &self.shared.mappings {
            Mappings::One(_) => true,
            Mappings::ByEndpoint(all) => all.at(index).is_some(),
            Mappings::Off => false,
        }
    }

    /// Applies `mapping` to every request, no media type binary.
    pub fn new(mapping: Arc<CompiledMapping>) -> Self {
        Self::build(
            Mappings::One(MethodMapping {
                mapping,
                binary: None,
            }),
            GatewayResponses::default(),
            Arc::from([]),
        )
    }

    /// The same layer treating `types` as binary (API Gateway's
    /// `binaryMediaTypes`; see [`BinaryMediaTypes`]). A gateway takes them
    /// from each method's `binary_media_types` setting.
    pub fn binary_media_types(self, types: BinaryMediaTypes) -> Self {
        let binary = (!types.is_empty()).then(|| Arc::new(types));
        let mappings = match &self.shared.mappings {
            Mappings::One(m) => Mappings::One(MethodMapping {
                mapping: m.mapping.clone(),
                binary,
            }),
            Mappings::ByEndpoint(m) => Mappings::ByEndpoint(m.clone()),
            Mappings::Off => Mappings::Off,
        };
        Self::build(
            mappings,
            self.shared.responses.clone(),
            self.shared.trusted.clone(),
        )
    }

    pub(crate) fn for_gateway(
        by_endpoint: PerEndpoint<MethodMapping>,
        responses: GatewayResponses,
        trusted: Arc<[IpNet]>,
    ) -> Self {
        let mappings = if by_endpoint.is_empty() {
            Mappings::Off
        } else {
            Mappings::ByEndpoint(by_endpoint)
        };
        Self::build(mappings, responses, trusted)
    }

    fn build(mappings: Mappings, responses: GatewayResponses, trusted: Arc<[IpNet]>) -> Self {
        Self {
            shared: Arc::new(Shared {
                mappings,
                responses,
                trusted,
            }),
        }
    }

    /// The same layer answering with `responses` (413, 415, 400, 500).
    pub fn responses(self, responses: GatewayResponses) -> Self {
        let mappings = match &self.shared.mappings {
            Mappings::One(m) => Mappings::One(m.clone()),
            Mappings::ByEndpoint(m) => Mappings::ByEndpoint(m.clone()),
            Mappings::Off => Mappings::Off,
        };
        Self::build(mappings, responses, self.shared.trusted.clone())
    }
}

impl<S> Layer<S> for MappingLayer {
    type Service = Mapping<S>;

    fn layer(&self, inner: S) -> Mapping<S> {
        Mapping {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The mapping middleware.
#[derive(Clone)]
pub struct Mapping<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for Mapping<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type BoxedFuture<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

pin_project_lite::pin_project! {
    /// Response future of [`Mapping`].
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        Pass { #[pin] future: F },
        Mapped { future: BoxedFuture<E> },
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Pass { future } => future.poll(cx).map(|r| r.map(|r| r.map(Body::new))),
            KindProj::Mapped { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Mapping<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let mapping = match &self.shared.mappings {
            Mappings::Off => None,
            Mappings::One(m) => Some(m.clone()),
            Mappings::ByEndpoint(all) => all.of(req.extensions()).cloned(),
        };
        let Some(MethodMapping { mapping, binary }) = mapping else {
            return ResponseFuture {
                kind: Kind::Pass {
                    future: self.inner.call(req.map(Body::new)),
                },
            };
        };
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        ResponseFuture {
            kind: Kind::Mapped {
                future: Box::pin(run(mapping, binary, shared, inner, req)),
            },
        }
    }
}
