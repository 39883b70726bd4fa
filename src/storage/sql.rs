//! The SQL of both backends, written once. `sql_store!` implements [`super::Store`] for a
//! struct with a `pool` field; its parameters are the only dialect differences.

/// Implements `Store` for `$store` (which has `pool: sqlx::Pool<_>`). `$skip_locked` is the
/// row-locking clause of the lease query: PostgreSQL needs `FOR UPDATE SKIP LOCKED` so that
/// replicas claim disjoint rows; SQLite serialises writers and needs nothing.
macro_rules! sql_store {
    ($store:ty, skip_locked = $skip_locked:literal) => {
        #[async_trait::async_trait]
        impl $crate::storage::Store for $store {
            async fn insert_signing_key(&self, key: &SigningKeyRow) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                insert_key(&mut tx, key).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRow>, DbError> {
                Ok(sqlx::query_as(
                    "SELECT kid, alg, private_jwk, created_at, retires_at FROM signing_keys \
                     ORDER BY created_at, seq",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn rotate_signing_key(
                &self,
                new_key: &SigningKeyRow,
                retire_previous_at: i64,
            ) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE signing_keys SET retires_at = $1 WHERE retires_at IS NULL OR retires_at > $1",
                )
                    .bind(retire_previous_at)
                    .execute(&mut *tx)
                    .await?;
                insert_key(&mut tx, new_key).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn insert_client(&self, client: &ClientRow) -> Result<(), DbError> {
                sqlx::query(
                    "INSERT INTO clients (client_id, name, secret_hash, scopes, created_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&client.client_id)
                .bind(&client.name)
                .bind(&client.secret_hash)
                .bind(&client.scopes)
                .bind(client.created_at)
                .bind(client.revoked_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_client(&self, client_id: &str) -> Result<ClientRow, DbError> {
                Ok(sqlx::query_as(
                    "SELECT client_id, name, secret_hash, scopes, created_at, revoked_at \
                     FROM clients WHERE client_id = $1",
                )
                .bind(client_id)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn list_clients(&self) -> Result<Vec<ClientRow>, DbError> {
                Ok(sqlx::query_as(
                    "SELECT client_id, name, secret_hash, scopes, created_at, revoked_at \
                     FROM clients ORDER BY created_at, client_id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn set_client_secret(&self, client_id: &str, secret_hash: &str) -> Result<(), DbError> {
                let done = sqlx::query("UPDATE clients SET secret_hash = $2 WHERE client_id = $1")
                    .bind(client_id)
                    .bind(secret_hash)
                    .execute(&self.pool)
                    .await?;
                found(done.rows_affected())
            }

            async fn revoke_client(&self, client_id: &str, now: i64) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE clients SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL",
                )
                .bind(client_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                found(done.rows_affected())?;
                sqlx::query(
                    "UPDATE credentials SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL",
                )
                .bind(client_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn insert_credential(&self, credential: &CredentialRow) -> Result<(), DbError> {
                sqlx::query(
                    "INSERT INTO credentials (id, kind, name, token_hash, scopes, client_id, created_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&credential.id)
                .bind(&credential.kind)
                .bind(&credential.name)
                .bind(&credential.token_hash)
                .bind(&credential.scopes)
                .bind(&credential.client_id)
                .bind(credential.created_at)
                .bind(credential.revoked_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn find_credential_by_token_hash(&self, token_hash: &str) -> Result<CredentialRow, DbError> {
                Ok(sqlx::query_as(
                    "SELECT id, kind, name, token_hash, scopes, client_id, created_at, revoked_at \
                     FROM credentials WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn list_credentials(&self, kind: &str) -> Result<Vec<CredentialRow>, DbError> {
                Ok(sqlx::query_as(
                    "SELECT id, kind, name, token_hash, scopes, client_id, created_at, revoked_at \
                     FROM credentials WHERE kind = $1 ORDER BY created_at, id",
                )
                .bind(kind)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn revoke_credential(&self, id: &str, now: i64) -> Result<(), DbError> {
                let done = sqlx::query(
                    "UPDATE credentials SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
                found(done.rows_affected())
            }

            async fn insert_stream(&self, stream: &StreamRow) -> Result<(), DbError> {
                sqlx::query(
                    "INSERT INTO streams (stream_id, client_id, aud, events_requested, events_delivered, \
                     delivery_method, endpoint_url, authorization_header, description, status, status_reason, \
                     min_verification_interval, last_verification_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(&stream.stream_id)
                .bind(&stream.client_id)
                .bind(&stream.aud)
                .bind(&stream.events_requested)
                .bind(&stream.events_delivered)
                .bind(&stream.delivery_method)
                .bind(&stream.endpoint_url)
                .bind(&stream.authorization_header)
                .bind(&stream.description)
                .bind(&stream.status)
                .bind(&stream.status_reason)
                .bind(stream.min_verification_interval)
                .bind(stream.last_verification_at)
                .bind(stream.created_at)
                .bind(stream.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_stream(&self, stream_id: &str) -> Result<StreamRow, DbError> {
                Ok(sqlx::query_as(concat!("SELECT ", stream_columns!(), " FROM streams WHERE stream_id = $1"))
                    .bind(stream_id)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn list_streams(&self, client_id: Option<&str>) -> Result<Vec<StreamRow>, DbError> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ", stream_columns!(), " FROM streams \
                     WHERE $1 IS NULL OR client_id = $1 ORDER BY created_at, stream_id"
                ))
                .bind(client_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn update_stream(&self, stream: &StreamRow) -> Result<(), DbError> {
                let done = sqlx::query(
                    "UPDATE streams SET aud = $2, events_requested = $3, events_delivered = $4, \
                     delivery_method = $5, endpoint_url = $6, authorization_header = $7, description = $8, \
                     min_verification_interval = $9, updated_at = $10 WHERE stream_id = $1",
                )
                .bind(&stream.stream_id)
                .bind(&stream.aud)
                .bind(&stream.events_requested)
                .bind(&stream.events_delivered)
                .bind(&stream.delivery_method)
                .bind(&stream.endpoint_url)
                .bind(&stream.authorization_header)
                .bind(&stream.description)
                .bind(stream.min_verification_interval)
                .bind(stream.updated_at)
                .execute(&self.pool)
                .await?;
                found(done.rows_affected())
            }

            async fn delete_stream(&self, stream_id: &str) -> Result<(), DbError> {
                let done = sqlx::query("DELETE FROM streams WHERE stream_id = $1")
                    .bind(stream_id)
                    .execute(&self.pool)
                    .await?;
                found(done.rows_affected())
            }

            async fn set_stream_status(
                &self,
                stream_id: &str,
                status: &str,
                reason: Option<&str>,
                now: i64,
                announce: &[NewOutboxRow],
            ) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE streams SET status = $2, status_reason = $3, updated_at = $4 WHERE stream_id = $1",
                )
                .bind(stream_id)
                .bind(status)
                .bind(reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                found(done.rows_affected())?;
                let follow_up = match status {
                    "enabled" => sqlx::query(
                        "UPDATE outbox SET state = 'pending', next_attempt_at = $2 \
                         WHERE stream_id = $1 AND state = 'held'",
                    )
                    .bind(stream_id)
                    .bind(now),
                    "paused" => sqlx::query(
                        "UPDATE outbox SET state = 'held' \
                         WHERE stream_id = $1 AND state = 'pending' AND NOT bypass_status",
                    )
                    .bind(stream_id),
                    _ => sqlx::query(
                        "DELETE FROM outbox WHERE stream_id = $1 AND state IN ('pending', 'held') \
                         AND NOT bypass_status",
                    )
                    .bind(stream_id),
                };
                follow_up.execute(&mut *tx).await?;
                for row in announce {
                    insert_outbox(&mut tx, row, now).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn record_verification(&self, stream_id: &str, now: i64, set: &NewOutboxRow) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("UPDATE streams SET last_verification_at = $2 WHERE stream_id = $1")
                    .bind(stream_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                found(done.rows_affected())?;
                insert_outbox(&mut tx, set, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn upsert_subject(&self, subject: &SubjectRow) -> Result<(), DbError> {
                sqlx::query(
                    "INSERT INTO stream_subjects (stream_id, subject_key, subject, mode, verified, changed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (stream_id, subject_key) DO UPDATE SET subject = excluded.subject, \
                     mode = excluded.mode, verified = excluded.verified, changed_at = excluded.changed_at",
                )
                .bind(&subject.stream_id)
                .bind(&subject.subject_key)
                .bind(&subject.subject)
                .bind(&subject.mode)
                .bind(subject.verified)
                .bind(subject.changed_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_subject(&self, stream_id: &str, subject_key: &str) -> Result<(), DbError> {
                let done = sqlx::query("DELETE FROM stream_subjects WHERE stream_id = $1 AND subject_key = $2")
                    .bind(stream_id)
                    .bind(subject_key)
                    .execute(&self.pool)
                    .await?;
                found(done.rows_affected())
            }

            async fn list_subjects(&self, stream_id: Option<&str>) -> Result<Vec<SubjectRow>, DbError> {
                Ok(sqlx::query_as(
                    "SELECT stream_id, subject_key, subject, mode, verified, changed_at FROM stream_subjects \
                     WHERE $1 IS NULL OR stream_id = $1 ORDER BY stream_id, changed_at, subject_key",
                )
                .bind(stream_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn enqueue(&self, sets: &[NewOutboxRow], now: i64) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                for row in sets {
                    insert_outbox(&mut tx, row, now).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn lease_due(&self, lease: Lease<'_>) -> Result<Vec<LeasedSet>, DbError> {
                Ok(sqlx::query_as(concat!(
                    "UPDATE outbox SET leased_until = $1, lease_owner = $2 WHERE id IN (\
                     SELECT o.id FROM outbox o JOIN streams s ON s.stream_id = o.stream_id \
                     WHERE o.state = 'pending' AND o.next_attempt_at <= $3 \
                     AND (o.leased_until IS NULL OR o.leased_until < $3) \
                     AND s.delivery_method = 'urn:ietf:rfc:8935' \
                     AND (s.status = 'enabled' OR o.bypass_status) \
                     ORDER BY o.id LIMIT $4 ", $skip_locked, ") \
                     RETURNING id, stream_id, jti, token, attempts, created_at, bypass_status"
                ))
                .bind(lease.until)
                .bind(lease.owner)
                .bind(lease.now)
                .bind(lease.limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn mark_delivered(&self, ids: &[i64], now: i64) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                for id in ids {
                    let stream: Option<(String,)> =
                        sqlx::query_as("DELETE FROM outbox WHERE id = $1 RETURNING stream_id")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if let Some((stream_id,)) = stream {
                        sqlx::query(
                            "INSERT INTO stream_delivery_stats (stream_id, delivered, last_success_at) VALUES ($1, 1, $2) \
                             ON CONFLICT (stream_id) DO UPDATE SET delivered = stream_delivery_stats.delivered + 1, \
                             last_success_at = excluded.last_success_at",
                        )
                        .bind(stream_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn schedule_retry(&self, id: i64, next_attempt_at: i64, error: &str, now: i64) -> Result<(), DbError> {
                self.fail(id, "pending", next_attempt_at, error, now, false).await
            }

            async fn dead_letter(&self, id: i64, error: &str, now: i64) -> Result<(), DbError> {
                self.fail(id, "dead", now, error, now, true).await
            }

            async fn pending_sets(&self, stream_id: &str, limit: i64) -> Result<Vec<(String, String)>, DbError> {
                Ok(sqlx::query_as(
                    "SELECT jti, token FROM outbox WHERE stream_id = $1 AND state = 'pending' ORDER BY id LIMIT $2",
                )
                .bind(stream_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn acknowledge(&self, stream_id: &str, jtis: &[String], now: i64) -> Result<u64, DbError> {
                let mut tx = self.pool.begin().await?;
                let mut removed = 0;
                for jti in jtis {
                    removed += sqlx::query(
                        "DELETE FROM outbox WHERE stream_id = $1 AND jti = $2 AND state IN ('pending', 'held')",
                    )
                    .bind(stream_id)
                    .bind(jti)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                if removed > 0 {
                    sqlx::query(
                        "INSERT INTO stream_delivery_stats (stream_id, delivered, last_success_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (stream_id) DO UPDATE SET delivered = stream_delivery_stats.delivered + excluded.delivered, \
                         last_success_at = excluded.last_success_at",
                    )
                    .bind(stream_id)
                    .bind(i64::try_from(removed).unwrap_or(i64::MAX))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(removed)
            }

            async fn reject_sets(&self, stream_id: &str, errors: &[(String, String)], now: i64) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                for (jti, error) in errors {
                    let done = sqlx::query(
                        "UPDATE outbox SET state = 'rejected', last_error = $3, leased_until = NULL \
                         WHERE stream_id = $1 AND jti = $2 AND state IN ('pending', 'held')",
                    )
                    .bind(stream_id)
                    .bind(jti)
                    .bind(error)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() > 0 {
                        record_failure(&mut tx, stream_id, error, now, false).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn replay_dead(&self, stream_id: &str, now: i64) -> Result<u64, DbError> {
                Ok(sqlx::query(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $2, created_at = $2, \
                     leased_until = NULL WHERE stream_id = $1 AND state = 'dead'",
                )
                .bind(stream_id)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected())
            }

            async fn outbox_entries(&self, stream_id: &str, state: &str, limit: i64) -> Result<Vec<OutboxEntry>, DbError> {
                Ok(sqlx::query_as(
                    "SELECT id, stream_id, jti, state, attempts, created_at, last_error FROM outbox \
                     WHERE stream_id = $1 AND state = $2 ORDER BY id LIMIT $3",
                )
                .bind(stream_id)
                .bind(state)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn delivery_stats(&self, stream_id: &str) -> Result<DeliveryStats, DbError> {
                let stats = sqlx::query_as(
                    "SELECT delivered, failed, dead, last_success_at, last_failure_at, last_error \
                     FROM stream_delivery_stats WHERE stream_id = $1",
                )
                .bind(stream_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(stats.unwrap_or_default())
            }

            async fn insert_upstream(&self, upstream: &UpstreamRow) -> Result<(), DbError> {
                sqlx::query(concat!("INSERT INTO upstreams (", upstream_columns!(), ") \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"))
                    .bind(&upstream.id)
                    .bind(&upstream.issuer)
                    .bind(&upstream.metadata)
                    .bind(&upstream.auth)
                    .bind(&upstream.delivery_method)
                    .bind(&upstream.events_requested)
                    .bind(&upstream.remote_stream_id)
                    .bind(&upstream.poll_url)
                    .bind(&upstream.audience)
                    .bind(&upstream.jwks)
                    .bind(&upstream.push_token_hash)
                    .bind(&upstream.status)
                    .bind(&upstream.verification_state)
                    .bind(upstream.verified_at)
                    .bind(upstream.created_at)
                    .bind(upstream.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_upstream(&self, id: &str) -> Result<UpstreamRow, DbError> {
                Ok(sqlx::query_as(concat!("SELECT ", upstream_columns!(), " FROM upstreams WHERE id = $1"))
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn list_upstreams(&self) -> Result<Vec<UpstreamRow>, DbError> {
                Ok(sqlx::query_as(concat!("SELECT ", upstream_columns!(), " FROM upstreams ORDER BY created_at, id"))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn update_upstream(&self, upstream: &UpstreamRow) -> Result<(), DbError> {
                let done = sqlx::query(
                    "UPDATE upstreams SET issuer = $2, metadata = $3, auth = $4, delivery_method = $5, \
                     events_requested = $6, remote_stream_id = $7, audience = $8, jwks = $9, push_token_hash = $10, \
                     status = $11, verification_state = $12, verified_at = $13, updated_at = $14, poll_url = $15 \
                     WHERE id = $1",
                )
                .bind(&upstream.id)
                .bind(&upstream.issuer)
                .bind(&upstream.metadata)
                .bind(&upstream.auth)
                .bind(&upstream.delivery_method)
                .bind(&upstream.events_requested)
                .bind(&upstream.remote_stream_id)
                .bind(&upstream.audience)
                .bind(&upstream.jwks)
                .bind(&upstream.push_token_hash)
                .bind(&upstream.status)
                .bind(&upstream.verification_state)
                .bind(upstream.verified_at)
                .bind(upstream.updated_at)
                .bind(&upstream.poll_url)
                .execute(&self.pool)
                .await?;
                found(done.rows_affected())
            }

            async fn delete_upstream(&self, id: &str) -> Result<(), DbError> {
                let done = sqlx::query("DELETE FROM upstreams WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                found(done.rows_affected())
            }

            async fn get_received(&self, iss: &str, jti: &str) -> Result<Option<ReceivedEventRow>, DbError> {
                Ok(sqlx::query_as(
                    "SELECT upstream_id, iss, jti, token, claims, event_type, arrived_at, outcome \
                     FROM received_events WHERE iss = $1 AND jti = $2",
                )
                .bind(iss)
                .bind(jti)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_received(&self, upstream_id: Option<&str>, limit: i64) -> Result<Vec<ReceivedEventRow>, DbError> {
                Ok(sqlx::query_as(
                    "SELECT upstream_id, iss, jti, token, claims, event_type, arrived_at, outcome \
                     FROM received_events WHERE ($1 IS NULL OR upstream_id = $1) ORDER BY id DESC LIMIT $2",
                )
                .bind(upstream_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn prune_received(&self, before: i64) -> Result<u64, DbError> {
                let done = sqlx::query("DELETE FROM received_events WHERE arrived_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn record_upstream_health(&self, upstream_id: &str, now: i64, error: Option<&str>) -> Result<(), DbError> {
                sqlx::query(
                    "INSERT INTO upstream_health (upstream_id, checked_at, ok_at, error) \
                     SELECT $1, $2, CASE WHEN $3 IS NULL THEN $2 END, $3 WHERE EXISTS (SELECT 1 FROM upstreams WHERE id = $1) \
                     ON CONFLICT (upstream_id) DO UPDATE SET checked_at = excluded.checked_at, \
                     ok_at = COALESCE(excluded.ok_at, upstream_health.ok_at), error = excluded.error",
                )
                .bind(upstream_id)
                .bind(now)
                .bind(error)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn upstream_health(&self, upstream_id: &str) -> Result<Option<UpstreamHealth>, DbError> {
                Ok(sqlx::query_as("SELECT checked_at, ok_at, error FROM upstream_health WHERE upstream_id = $1")
                    .bind(upstream_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn insert_received(&self, event: &ReceivedEventRow) -> Result<bool, DbError> {
                let done = sqlx::query(
                    "INSERT INTO received_events (upstream_id, iss, jti, token, claims, event_type, arrived_at, outcome) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (iss, jti) DO NOTHING",
                )
                .bind(&event.upstream_id)
                .bind(&event.iss)
                .bind(&event.jti)
                .bind(&event.token)
                .bind(&event.claims)
                .bind(&event.event_type)
                .bind(event.arrived_at)
                .bind(&event.outcome)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        impl $store {
            /// Records a failed push: the row is retried (`pending`) or dead (`dead`).
            async fn fail(&self, id: i64, state: &str, next_attempt_at: i64, error: &str, now: i64, dead: bool) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                let stream: Option<(String,)> = sqlx::query_as(
                    "UPDATE outbox SET state = $2, attempts = attempts + 1, next_attempt_at = $3, last_error = $4, \
                     leased_until = NULL, lease_owner = NULL WHERE id = $1 RETURNING stream_id",
                )
                .bind(id)
                .bind(state)
                .bind(next_attempt_at)
                .bind(error)
                .fetch_optional(&mut *tx)
                .await?;
                let (stream_id,) = stream.ok_or(DbError::NotFound)?;
                record_failure(&mut tx, &stream_id, error, now, dead).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

/// The column list of `StreamRow`.
macro_rules! stream_columns {
    () => {
        "stream_id, client_id, aud, events_requested, events_delivered, delivery_method, endpoint_url, \
         authorization_header, description, status, status_reason, min_verification_interval, \
         last_verification_at, created_at, updated_at"
    };
}

/// The column list of `UpstreamRow`.
macro_rules! upstream_columns {
    () => {
        "id, issuer, metadata, auth, delivery_method, events_requested, remote_stream_id, poll_url, \
         audience, jwks, push_token_hash, status, verification_state, verified_at, created_at, updated_at"
    };
}

/// Helpers generic over the transaction type, instantiated per backend. `$lock_stream` makes
/// an outbox insert share-lock its stream row on PostgreSQL, so that a concurrent status change
/// waits for it (and the insert sees the status that change commits); SQLite serialises
/// writers and needs nothing.
macro_rules! sql_helpers {
    ($db:ty, lock_stream = $lock_stream:literal) => {
        fn found(rows: u64) -> Result<(), DbError> {
            if rows == 0 {
                Err(DbError::NotFound)
            } else {
                Ok(())
            }
        }

        async fn insert_key(
            tx: &mut sqlx::Transaction<'_, $db>,
            key: &SigningKeyRow,
        ) -> Result<(), DbError> {
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, private_jwk, created_at, retires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.private_jwk)
            .bind(key.created_at)
            .bind(key.retires_at)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// Inserts one SET. Its state follows the stream's status as the transaction sees it
        /// (locked against a concurrent status change): held for a paused stream, nothing at
        /// all for a disabled one (SSF-ST-07/08), pending otherwise; announcements
        /// (`bypass_status`) are always pending, and `held` forces held.
        async fn insert_outbox(
            tx: &mut sqlx::Transaction<'_, $db>,
            row: &NewOutboxRow,
            now: i64,
        ) -> Result<(), DbError> {
            sqlx::query(concat!(
                "INSERT INTO outbox (stream_id, jti, token, state, bypass_status, created_at, next_attempt_at) \
                 SELECT s.stream_id, $2, $3, \
                 CASE WHEN $5 THEN 'pending' WHEN $4 OR s.status = 'paused' THEN 'held' ELSE 'pending' END, \
                 $5, $6, $6 FROM streams s WHERE s.stream_id = $1 AND ($5 OR s.status <> 'disabled') ",
                $lock_stream
            ))
            .bind(&row.stream_id)
            .bind(&row.jti)
            .bind(&row.token)
            .bind(row.held)
            .bind(row.bypass_status)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        async fn record_failure(
            tx: &mut sqlx::Transaction<'_, $db>,
            stream_id: &str,
            error: &str,
            now: i64,
            dead: bool,
        ) -> Result<(), DbError> {
            sqlx::query(
                "INSERT INTO stream_delivery_stats (stream_id, failed, dead, last_failure_at, last_error) \
                 VALUES ($1, 1, $2, $3, $4) ON CONFLICT (stream_id) DO UPDATE SET \
                 failed = stream_delivery_stats.failed + 1, dead = stream_delivery_stats.dead + excluded.dead, \
                 last_failure_at = excluded.last_failure_at, last_error = excluded.last_error",
            )
            .bind(stream_id)
            .bind(i64::from(dead))
            .bind(now)
            .bind(error)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
    };
}
