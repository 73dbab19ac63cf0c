//! `emofy serve`: the game server.

use anyhow::Context;
use emofy_server::{Application, Config};

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let host = config.host.clone();
    let data = config.data_dir.display().to_string();
    let app = Application::build(config)
        .await
        .context("starting the server")?;
    let shown_host = if host == "0.0.0.0" {
        "localhost"
    } else {
        host.as_str()
    };
    println!(
        "Emofy is running at http://{shown_host}:{}/  (data: {data}; Ctrl-C to stop)",
        app.port()
    );
    app.run_until_stopped().await?;
    Ok(())
}
