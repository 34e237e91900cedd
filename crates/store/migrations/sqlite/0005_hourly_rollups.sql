-- Hourly analytics rollups (issue 5): the per-minute rollups of 0003 summed by hour, so that
-- analytics over days or weeks read up to 60 times fewer rows. Same columns and conventions as
-- `usage_rollups`; `bucket_ms` is the start of the hour (UTC). The usage writer adds every batch
-- to both tables in one transaction; analytics read whole hours from here and the partial hours
-- at a range's edges from `usage_rollups`, so that answers equal the minute rollups' exactly.
-- The SQLite and Postgres migrations of this number are the same text.

CREATE TABLE usage_rollups_hourly (
    bucket_ms           BIGINT NOT NULL,
    org                 TEXT NOT NULL DEFAULT '',
    dimension           TEXT NOT NULL,
    value               TEXT NOT NULL,
    requests            BIGINT NOT NULL DEFAULT 0,
    errors              BIGINT NOT NULL DEFAULT 0,
    cancelled           BIGINT NOT NULL DEFAULT 0,
    input_tokens        BIGINT NOT NULL DEFAULT 0,
    output_tokens       BIGINT NOT NULL DEFAULT 0,
    cached_input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens  BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens    BIGINT NOT NULL DEFAULT 0,
    cost_micros         BIGINT NOT NULL DEFAULT 0,
    latency_ms_sum      BIGINT NOT NULL DEFAULT 0,
    ttft_ms_sum         BIGINT NOT NULL DEFAULT 0,
    ttft_count          BIGINT NOT NULL DEFAULT 0,
    lat_00              BIGINT NOT NULL DEFAULT 0,
    lat_01              BIGINT NOT NULL DEFAULT 0,
    lat_02              BIGINT NOT NULL DEFAULT 0,
    lat_03              BIGINT NOT NULL DEFAULT 0,
    lat_04              BIGINT NOT NULL DEFAULT 0,
    lat_05              BIGINT NOT NULL DEFAULT 0,
    lat_06              BIGINT NOT NULL DEFAULT 0,
    lat_07              BIGINT NOT NULL DEFAULT 0,
    lat_08              BIGINT NOT NULL DEFAULT 0,
    lat_09              BIGINT NOT NULL DEFAULT 0,
    lat_10              BIGINT NOT NULL DEFAULT 0,
    lat_11              BIGINT NOT NULL DEFAULT 0,
    lat_12              BIGINT NOT NULL DEFAULT 0,
    lat_13              BIGINT NOT NULL DEFAULT 0,
    lat_14              BIGINT NOT NULL DEFAULT 0,
    lat_15              BIGINT NOT NULL DEFAULT 0,
    lat_16              BIGINT NOT NULL DEFAULT 0,
    lat_17              BIGINT NOT NULL DEFAULT 0,
    lat_18              BIGINT NOT NULL DEFAULT 0,
    lat_19              BIGINT NOT NULL DEFAULT 0,
    lat_20              BIGINT NOT NULL DEFAULT 0,
    lat_21              BIGINT NOT NULL DEFAULT 0,
    lat_22              BIGINT NOT NULL DEFAULT 0,
    lat_23              BIGINT NOT NULL DEFAULT 0,
    lat_24              BIGINT NOT NULL DEFAULT 0,
    lat_25              BIGINT NOT NULL DEFAULT 0,
    lat_26              BIGINT NOT NULL DEFAULT 0,
    lat_27              BIGINT NOT NULL DEFAULT 0,
    lat_28              BIGINT NOT NULL DEFAULT 0,
    lat_29              BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (dimension, value, org, bucket_ms)
);
-- Retention deletes by time; analytics read one dimension over a range (as for 0003's table).
CREATE INDEX usage_rollups_hourly_time ON usage_rollups_hourly (bucket_ms);
CREATE INDEX usage_rollups_hourly_dim_time ON usage_rollups_hourly (dimension, bucket_ms, org);

-- The hours of the minutes already rolled up. Minute buckets are at or after 1970, where integer
-- division rounds down in both databases as the writer does.
INSERT INTO usage_rollups_hourly (
    bucket_ms, org, dimension, value, requests, errors, cancelled, input_tokens, output_tokens,
    cached_input_tokens, cache_write_tokens, reasoning_tokens, cost_micros, latency_ms_sum,
    ttft_ms_sum, ttft_count, lat_00, lat_01, lat_02, lat_03, lat_04, lat_05, lat_06, lat_07,
    lat_08, lat_09, lat_10, lat_11, lat_12, lat_13, lat_14, lat_15, lat_16, lat_17, lat_18,
    lat_19, lat_20, lat_21, lat_22, lat_23, lat_24, lat_25, lat_26, lat_27, lat_28, lat_29)
SELECT (bucket_ms / 3600000) * 3600000, org, dimension, value,
    SUM(requests), SUM(errors), SUM(cancelled), SUM(input_tokens), SUM(output_tokens),
    SUM(cached_input_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_micros),
    SUM(latency_ms_sum), SUM(ttft_ms_sum), SUM(ttft_count), SUM(lat_00), SUM(lat_01),
    SUM(lat_02), SUM(lat_03), SUM(lat_04), SUM(lat_05), SUM(lat_06), SUM(lat_07), SUM(lat_08),
    SUM(lat_09), SUM(lat_10), SUM(lat_11), SUM(lat_12), SUM(lat_13), SUM(lat_14), SUM(lat_15),
    SUM(lat_16), SUM(lat_17), SUM(lat_18), SUM(lat_19), SUM(lat_20), SUM(lat_21), SUM(lat_22),
    SUM(lat_23), SUM(lat_24), SUM(lat_25), SUM(lat_26), SUM(lat_27), SUM(lat_28), SUM(lat_29)
FROM usage_rollups
GROUP BY (bucket_ms / 3600000) * 3600000, org, dimension, value;
