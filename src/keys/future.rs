//! The API key layer's response future, made by the shared gate machinery.

use crate::context::ApiKeyIdentity;

crate::gate::response_future! {
    /// Response future of [`ApiKey`](super::ApiKey).
    ///
    /// Opaque: it is either already decided (a store that answered without
    /// waiting, or a rejection) and then just the inner service's future,
    /// or a boxed lookup followed by the inner call. On the way out it puts
    /// the accepted key's [`ApiKeyIdentity`] in the response extensions, for
    /// the usage layer.
    Option<ApiKeyIdentity>
}
