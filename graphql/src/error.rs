//! The API's one error type, mapped to `extensions.code` in one place.
//!
//! `ApiError` deliberately does not implement `Display`: async-graphql turns
//! every `Display` type into an error without extensions, and a resolver
//! that forgot the code would compile. Without `Display` the only way to the
//! client is the `From` impl below, which always sets the code.

use std::sync::Arc;

use async_graphql::ErrorExtensions;

/// `Clone` because async-graphql requires it of resolver errors; the
/// internal cause is shared behind an `Arc` for that reason.
#[derive(Debug, Clone)]
pub enum ApiError {
    Unauthenticated(&'static str),
    BadInput(String),
    NotFound(&'static str),
    /// A dependency is down; nothing the client did is wrong.
    Unavailable,
    Internal(Arc<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn bad_input(reason: impl Into<String>) -> Self {
        ApiError::BadInput(reason.into())
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::BadInput(_) => "BAD_USER_INPUT",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Unavailable | ApiError::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated(reason) => (*reason).to_owned(),
            ApiError::BadInput(reason) => reason.clone(),
            ApiError::NotFound(what) => format!("{what} not found"),
            ApiError::Unavailable => "service unavailable, try again later".to_owned(),
            ApiError::Internal(_) => "internal error".to_owned(),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        ApiError::Internal(Arc::new(err))
    }
}

impl From<crate::backend::BackendError> for ApiError {
    fn from(err: crate::backend::BackendError) -> Self {
        ApiError::Internal(Arc::new(err))
    }
}

impl From<ApiError> for async_graphql::Error {
    /// Internal causes are logged here, once, and never shown: the client
    /// sees "internal error".
    fn from(err: ApiError) -> Self {
        if let ApiError::Internal(cause) = &err {
            tracing::error!(error = %cause, "internal error in resolver");
        }
        let code = err.code();
        async_graphql::Error::new(err.message()).extend_with(|_, ext| ext.set("code", code))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
