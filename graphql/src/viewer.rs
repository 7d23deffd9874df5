//! Who is asking. The HTTP edge resolves credentials before execution and
//! puts a `Viewer` in the request data; resolvers that need a user call
//! [`Viewer::user`].

use entity::user;

use crate::ApiError;

#[derive(Clone, Debug, Default)]
pub enum Viewer {
    /// No credentials were sent.
    #[default]
    Anonymous,
    /// Credentials were sent but did not verify.
    Rejected,
    /// Credentials were sent but could not be checked (database down).
    Unverifiable,
    /// Credentials were sent but refused unverified: too many failed
    /// attempts lately from the client's address or for the user.
    TooManyFailures,
    User(user::Model),
}

impl Viewer {
    pub fn user(&self) -> Result<&user::Model, ApiError> {
        match self {
            Viewer::User(user) => Ok(user),
            Viewer::Anonymous => Err(ApiError::Unauthenticated("sign in to do this")),
            Viewer::Rejected => Err(ApiError::Unauthenticated("wrong user id or secret")),
            Viewer::Unverifiable => Err(ApiError::Unavailable),
            Viewer::TooManyFailures => Err(ApiError::Unauthenticated(
                "too many failed authentication attempts; try again later",
            )),
        }
    }
}
