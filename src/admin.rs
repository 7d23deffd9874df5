//! Operator commands (`tidings user create NAME`). They run the same GraphQL
//! operation a client would, in process, so an operator cannot create a user
//! that the API's rules would refuse.

use async_graphql::{Request, Variables};
use serde::Deserialize;
use serde_json::json;

use crate::app::{Application, StartError};
use crate::config::Config;

#[derive(Debug, Deserialize)]
pub struct CreatedUser {
    pub id: String,
    pub username: String,
    pub secretkey: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0}")]
    Refused(String),
}

pub async fn create_user(mut config: Config, username: &str) -> Result<CreatedUser, AdminError> {
    // Nothing is served: the listener only exists because `build` binds one.
    config.listen = ([127, 0, 0, 1], 0).into();
    let app = Application::build(config).await?;
    let request = Request::new(
        "mutation($username: String!) { signUp(username: $username) { id username secretkey } }",
    )
    .variables(Variables::from_json(json!({ "username": username })));
    let response = app.schema().execute(request).await;
    if let Some(error) = response.errors.first() {
        return Err(AdminError::Refused(error.message.clone()));
    }
    let data = response
        .data
        .into_json()
        .map_err(|e| AdminError::Refused(e.to_string()))?;
    serde_json::from_value(data["signUp"].clone()).map_err(|e| AdminError::Refused(e.to_string()))
}
