use worker_core::prelude::*;

#[worker("mailer")]
struct Mailer;

fn main() {}
