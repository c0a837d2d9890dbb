//! `certfleet notify`: one notification run, or --dry-run, --status, --test, --mute,
//! --unmute. Also builds the notifier the scheduler role runs.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use certfleet_notifier::{
    Confirmed, Delivery, Notifier, OwnerRule, OwnerRules, ProbeLinks, Settings, Webhook,
    WebhookSpec,
};
use certfleet_store::{Store, SystemClock};

use certfleet_prober::Prober;

use super::admin::open_store;
use super::serve::prober_config;
use crate::cli::NotifyArgs;
use crate::config::{Config, WebhookConfig, WebhookFormat};
use certfleet_service::confirm::ProbeBeforeMail;

pub async fn run(args: NotifyArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.config.as_deref())?;
    let store = open_store(&config).await?;
    let notifier = build(&config, store.clone())?;
    if args.dry_run {
        return dry_run(&notifier).await;
    }
    if args.status {
        return status(&*store).await;
    }
    if let Some(address) = &args.test {
        notifier
            .send_test(address)
            .await
            .with_context(|| format!("cannot send the test message to {address}"))?;
        let via = notifier.settings().delivery_name();
        println!("test message sent to {address} via {via}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(sha256) = &args.mute {
        let reason = args.reason.as_deref().unwrap_or_default();
        let until = time::OffsetDateTime::now_utc()
            + time::Duration::try_from(args.mute_for).context("--for is out of range")?;
        let mute = store.mute_certificate(sha256, reason, until).await?;
        println!(
            "muted {} until {} ({})",
            mute.sha256, mute.muted_until, mute.reason
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(sha256) = &args.unmute {
        let ended = store.unmute_certificate(sha256).await?;
        println!("{}", if ended { "unmuted" } else { "was not muted" });
        return Ok(ExitCode::SUCCESS);
    }
    let report = notifier
        .run_once()
        .await
        .context("notification run failed")?;
    if report.confirmed != Confirmed::default() {
        println!(
            "{} endpoint(s) probed again before mail ({} failed, {} not probed), {} certificate(s) found rotated",
            report.confirmed.probed,
            report.confirmed.failed,
            report.confirmed.skipped,
            report.rotated
        );
    }
    println!(
        "{} due, {} claimed, {} resolved, {} digests sent ({} notifications), {} failed",
        report.due,
        report.claimed,
        report.resolved,
        report.digests_sent,
        report.notifications_sent,
        report.failures.len()
    );
    for failure in &report.failures {
        println!("failed: {}: {}", failure.owner, failure.error);
    }
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The notifier `[notify]`, `[server]` and `[[owners.rules]]` describe.
pub fn build(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Notifier> {
    build_linked(config, store, &config.server.base_url)
}

/// [`build`], with the base of the links in mails given (`serve` passes the address it
/// bound when `server.base_url` was left at its default).
pub fn build_linked(
    config: &Config,
    store: Arc<dyn Store>,
    base_url: &str,
) -> anyhow::Result<Notifier> {
    let notify = &config.notify;
    let rules = config
        .owners
        .rules
        .iter()
        .map(|rule| OwnerRule {
            app: rule.app.clone(),
            env: rule.env.clone(),
            namespace: rule.namespace.clone(),
            container: rule.container.clone(),
            hostname: rule.hostname.clone(),
            cidr: rule.cidr,
            email: rule.email.clone(),
            thresholds: rule.thresholds.clone(),
        })
        .collect();
    let owners = OwnerRules::new(rules, notify.default_owner.clone())?;
    let delivery = if notify.smtp_url.trim().is_empty() {
        Delivery::Files(notify.outbox_dir.clone())
    } else {
        Delivery::Smtp(notify.smtp_url.trim().to_owned())
    };
    let settings = Settings {
        from: notify.from.clone(),
        delivery,
        base_url: base_url.to_owned(),
        thresholds: notify.thresholds.clone(),
        short_lived_days: notify.short_lived_days,
        security_copy: Some(notify.security_copy.trim().to_owned()).filter(|s| !s.is_empty()),
        confirm_within: time::Duration::try_from(notify.confirm_within)
            .context("notify.confirm_within is out of range")?,
        confirm_wait: notify.confirm_wait,
        webhooks: webhooks(&notify.webhooks)?,
        webhook_timeout: notify.webhook_timeout,
        max_per_email: notify.max_per_email,
        probe_links: config.server.link_key()?.map(|key| ProbeLinks {
            key,
            lifetime: time::Duration::try_from(config.server.link_lifetime)
                .unwrap_or(time::Duration::days(7)),
        }),
        ..Settings::new(owners)
    };
    let worker = format!("{}/{}", hostname(), std::process::id());
    let prober = Arc::new(Prober::new(prober_config(config)?));
    let confirm = ProbeBeforeMail::new(
        store.clone(),
        prober,
        format!("confirm/{worker}"),
        config.probe.concurrency,
    );
    Ok(Notifier::new(store, settings, Arc::new(SystemClock))?
        .with_worker(worker)
        .with_confirm(Arc::new(confirm)))
}

/// The `[[notify.webhooks]]` entries, each checked, with its secret read from
/// `secret_file` when given.
pub fn webhooks(entries: &[WebhookConfig]) -> anyhow::Result<Vec<Webhook>> {
    let mut webhooks = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let secret = match (&entry.secret_file, entry.secret.is_empty()) {
            (Some(_), false) => {
                anyhow::bail!("notify.webhooks[{index}]: set secret or secret_file, not both")
            }
            (Some(path), true) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "notify.webhooks[{index}].secret_file: cannot read {}",
                        path.display()
                    )
                })?;
                let secret = text.trim_end_matches(['\r', '\n']).to_owned();
                if secret.is_empty() {
                    anyhow::bail!(
                        "notify.webhooks[{index}].secret_file: {} is empty",
                        path.display()
                    );
                }
                secret
            }
            (None, _) => entry.secret.clone(),
        };
        let format = match entry.format {
            WebhookFormat::Json => "json",
            WebhookFormat::Slack => "slack",
        };
        let spec = WebhookSpec {
            name: entry.name.clone(),
            url: entry.url.clone(),
            format: format.into(),
            owners: entry.owners.clone(),
            apps: entry.apps.clone(),
            secret,
        };
        webhooks.push(Webhook::new(index, spec)?);
    }
    Ok(webhooks)
}

async fn dry_run(notifier: &Notifier) -> anyhow::Result<ExitCode> {
    let digests = notifier.dry_run().await.context("dry run failed")?;
    if digests.is_empty() {
        println!("nothing would be sent now");
    }
    for digest in &digests {
        // A webhook's digest is shown as the body it would post.
        let text = digest.body.as_deref().unwrap_or(&digest.text);
        println!("To: {}\nSubject: {}\n\n{text}", digest.to, digest.subject);
        println!("{}", "=".repeat(78));
    }
    eprintln!(
        "{} digest(s) would be sent via {}",
        digests.len(),
        notifier.settings().delivery_name()
    );
    Ok(ExitCode::SUCCESS)
}

async fn status(store: &dyn Store) -> anyhow::Result<ExitCode> {
    let status = store.notification_status(50).await?;
    println!(
        "pending {}  failing {}  sent {}  resolved {}",
        status.pending, status.failing, status.sent, status.resolved
    );
    if let Some(at) = status.next_attempt_at {
        println!("next attempt: {at}");
    }
    for failure in &status.failures {
        println!(
            "FAILING {} {} {} attempts={} next={} error: {}",
            failure.owner,
            failure.sha256,
            failure.threshold,
            failure.attempts,
            failure
                .next_attempt_at
                .map_or_else(|| "now".to_owned(), |at| at.to_string()),
            failure.last_error.as_deref().unwrap_or("")
        );
    }
    for mute in store.muted_certificates().await? {
        println!(
            "MUTED {} until {}: {}",
            mute.sha256, mute.muted_until, mute.reason
        );
    }
    Ok(if status.failing > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "scheduler".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str, format: WebhookFormat) -> WebhookConfig {
        WebhookConfig {
            name: None,
            url: url.into(),
            format,
            owners: Vec::new(),
            apps: Vec::new(),
            secret: String::new(),
            secret_file: None,
        }
    }

    fn refused(entries: &[WebhookConfig]) -> String {
        match webhooks(entries) {
            Ok(hooks) => panic!("accepted: {hooks:?}"),
            Err(error) => format!("{error:#}"),
        }
    }

    #[test]
    fn a_webhook_outside_loopback_needs_https() {
        let slack = entry("http://hooks.example.com/x", WebhookFormat::Slack);
        assert!(refused(&[slack]).contains("notify.webhooks[0].url"));
    }

    #[test]
    fn an_empty_secret_posts_unsigned() {
        let json = entry("https://hooks.example.com/x", WebhookFormat::Json);
        let hooks = webhooks(&[json]).expect("secret = \"\" is the contract's example");
        assert_eq!(hooks[0].secret, None);
    }

    #[test]
    fn a_secret_file_is_read_without_its_newline() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").expect("write");
        let mut json = entry("https://hooks.example.com/x", WebhookFormat::Json);
        json.secret_file = Some(path.clone());
        let hooks = webhooks(std::slice::from_ref(&json)).expect("valid");
        assert_eq!(hooks[0].secret.as_deref(), Some("s3cret"));

        json.secret = "inline".into();
        assert!(refused(std::slice::from_ref(&json)).contains("not both"));
        json.secret = String::new();
        std::fs::write(&path, "\n").expect("write");
        assert!(refused(std::slice::from_ref(&json)).contains("is empty"));
        json.secret_file = Some(dir.path().join("missing"));
        assert!(refused(&[json]).contains("cannot read"));
    }
}
