//! Integration tests: each starts the real server on a random port with its
//! own database and talks to it as a client would.

mod client;
mod helpers;
mod notes_client;
mod plain_client;

mod admin;
mod backend_push;
mod brute_force;
mod cli;
mod cluster;
mod delivery;
mod delivery_cluster;
mod durable;
mod get_chats;
mod graphql_api;
mod health;
mod limits;
mod metrics;
mod mutation_rate;
mod notes;
mod openapi;
mod origin;
mod outages;
mod oversize_bodies;
mod plain;
mod plain_auth_proxy;
mod plain_identity;
mod presence;
mod pushes;
mod redis_failover;
mod redis_topologies;
mod rooms;
mod social_client;
mod socket_auth;
mod web;
