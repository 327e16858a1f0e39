//! A workflow's steps: onboarding a user. The profile is fetched once;
//! the avatar and the welcome page are made from it side by side; the
//! welcome message waits for both and reads their outputs. Each is an
//! ordinary worker, callable on its own too; the tour runs them as one
//! `Workflow`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use worker_core::prelude::*;

#[derive(Debug, Deserialize)]
pub struct User {
    pub user: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Profile {
    pub user: u32,
    pub name: String,
    pub email: String,
}

#[worker("fetch-profile", timeout = "2s")]
pub async fn fetch_profile(ctx: WorkerContext, user: User) -> Result<Profile> {
    ctx.sleep(Duration::from_millis(40)).await;
    Ok(Profile {
        user: user.user,
        name: "Ada Lovelace".to_owned(),
        email: "ada@example.com".to_owned(),
    })
}

#[worker("resize-avatar", timeout = "2s")]
pub async fn resize_avatar(ctx: WorkerContext) -> Result<String> {
    let profile: Profile = ctx.parent_output("profile")?;
    for size in [256, 64] {
        ctx.emit(json!({"resized": size}))?;
        ctx.sleep(Duration::from_millis(30)).await;
    }
    Ok(format!("avatars/{}-64.png", profile.user))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WelcomePage {
    pub to: String,
    pub html: String,
}

#[worker("render-welcome", timeout = "2s")]
pub async fn render_welcome(ctx: WorkerContext) -> Result<WelcomePage> {
    let profile: Profile = ctx.parent_output("profile")?;
    ctx.sleep(Duration::from_millis(50)).await;
    Ok(WelcomePage {
        to: profile.email,
        html: format!("<h1>Welcome, {}!</h1>", profile.name),
    })
}

/// Reads its two parents' outputs (a step reads its own parents only:
/// the profile reaches it through the page).
#[worker("send-welcome", timeout = "2s")]
pub async fn send_welcome(ctx: WorkerContext) -> Result<String> {
    let avatar: String = ctx.parent_output("avatar")?;
    let page: WelcomePage = ctx.parent_output("page")?;
    ctx.info(&format!(
        "sending {} bytes of welcome with {avatar} to {}",
        page.html.len(),
        page.to
    ));
    Ok(format!("welcome sent to {}", page.to))
}
