//! `eye serve`, `eye api` and `eye worker`: build the application for its role, say
//! where it listens, and run it until SIGTERM or Ctrl-C, then give the graceful
//! shutdown `shutdown_timeout_ms` at most.

use anyhow::Context;
use eye_server::startup::Role;
use eye_server::{Application, Settings};

pub async fn serve(settings: Settings, role: Role) -> anyhow::Result<()> {
    let deadline = std::time::Duration::from_millis(settings.shutdown_timeout_ms);
    let app = Application::build_as(settings, role).await?;
    // Tests and scripts read this line to find the port when listening on port 0.
    eprintln!("eye: listening on http://{}", app.local_addr());
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        let _ = signalled_tx.send(());
    };
    let mut run = tokio::spawn(app.run_until_stopped(shutdown));
    tokio::select! {
        result = &mut run => return result.context("server task")?,
        _ = signalled_rx => {}
    }
    // Once a signal has come, the whole graceful shutdown gets `deadline`.
    match tokio::time::timeout(deadline, run).await {
        Ok(result) => result.context("server task")?,
        Err(_) => {
            tracing::warn!(
                ?deadline,
                "graceful shutdown took too long; exiting with work still queued"
            );
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
