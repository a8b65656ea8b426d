//! Payments: hakken's side of the PSP (Stripe's wire protocol) and the money path's
//! moving parts. `stripe` is the REST client, `signature` and `webhook` check and read
//! the PSP's webhooks, `gateway` drives each payment through its life at the PSP, and
//! `reconcile` proves the PSP's money and hakken's orders agree. The decisions (what
//! an authorization buys, a late payment, a refund owed) are the engine's
//! (`hakken_engine::inventory::payments`); HTTP handlers are `crate::http::payments`.

pub mod gateway;
pub mod reconcile;
pub mod reconcile_cli;
pub mod signature;
pub mod stripe;
pub mod webhook;
