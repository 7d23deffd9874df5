//! Integration tests: each starts the real server on a random port with its
//! own database and talks to it as a client would.

mod client;
mod helpers;

mod admin;
mod backend_push;
mod cli;
mod cluster;
mod graphql_api;
mod health;
mod limits;
mod metrics;
mod openapi;
mod presence;
mod pushes;
mod rooms;
mod socket_auth;
mod web;
