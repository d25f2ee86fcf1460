-- Routing statistics (moeplan statistics file, version 1; see docs/fleet.md) in DuckDB.
--
-- Expects a view `trace(workload, file, token, seq, pos, layer, experts)` over canonical Parquet
-- traces (traces/FORMAT.md) and the variables `layers`, `hops`, `window_tokens` and
-- `cases_per_fold` (SET VARIABLE); leaves the statistics rows in the table `stats`, in the
-- canonical order. scripts/duckdb/aggregate.py sets all of it up and writes the file.

CREATE OR REPLACE TEMP TABLE hops AS
SELECT range::INTEGER AS hop FROM range(1, getvariable('hops') + 1);

-- One row per selection: (token, layer) -> expert.
CREATE OR REPLACE TEMP TABLE sel AS
SELECT workload, file, token, layer, unnest(experts) AS expert FROM trace;

-- h-hop pairs of the same token: the source row and the target row's experts.
CREATE OR REPLACE TEMP TABLE hop_rows AS
SELECT a.workload, h.hop, a.layer, a.experts AS src_list, b.experts AS dst_list
FROM trace a
JOIN hops h ON a.layer + h.hop < getvariable('layers')
JOIN trace b ON b.file = a.file AND b.token = a.token AND b.layer = a.layer + h.hop;

-- Previous token of the same sequence at the same layer.
CREATE OR REPLACE TEMP TABLE prev_rows AS
SELECT a.workload, a.layer, b.experts AS src_list, a.experts AS dst_list
FROM trace a
JOIN trace b ON b.file = a.file AND b.token = a.token - 1 AND b.seq = a.seq AND b.layer = a.layer;

-- The held-out sample: every stride-th (token, layer) of each file, token-major, per hop.
CREATE OR REPLACE TEMP TABLE strides AS
SELECT f.file, h.hop, f.t0,
       greatest(1, (f.n * (getvariable('layers') - h.hop)) // getvariable('cases_per_fold')) AS stride
FROM (SELECT file, count(*) AS n, min(token) AS t0 FROM trace WHERE layer = 0 GROUP BY file) f
CROSS JOIN hops h;

CREATE OR REPLACE TEMP TABLE case_keys AS
SELECT a.workload, a.file, a.token, a.seq, a.layer, s.hop, a.experts AS cur
FROM trace a
JOIN strides s ON s.file = a.file
WHERE a.layer < getvariable('layers') - s.hop
  AND ((a.token - s.t0) * (getvariable('layers') - s.hop) + a.layer) % s.stride = 0;

CREATE OR REPLACE TEMP TABLE stats AS
SELECT kind, workload, "window"::BIGINT AS "window", hop::INTEGER AS hop, layer::INTEGER AS layer,
       src::INTEGER AS src, dst::INTEGER AS dst, count::BIGINT AS count
FROM (
  SELECT 'tokens' AS kind, workload, -1::BIGINT AS "window", 0 AS hop, -1 AS layer, -1 AS src,
         -1 AS dst, count(*)::BIGINT AS count
  FROM trace WHERE layer = 0 GROUP BY workload
  UNION ALL
  SELECT 'followers', workload, -1, 0, -1, -1, -1, count(*)
  FROM prev_rows WHERE layer = 0 GROUP BY workload
  UNION ALL
  SELECT 'load', workload, -1, 0, layer, expert, -1, count(*)
  FROM sel GROUP BY workload, layer, expert
  UNION ALL
  SELECT 'window', workload, token // getvariable('window_tokens'), 0, layer, expert, -1, count(*)
  FROM sel GROUP BY ALL
  UNION ALL
  SELECT 'pair', workload, -1, hop, layer, src, dst, count(*)
  FROM (SELECT workload, hop, layer, src, unnest(dst_list) AS dst
        FROM (SELECT workload, hop, layer, unnest(src_list) AS src, dst_list FROM hop_rows))
  GROUP BY ALL
  UNION ALL
  SELECT 'top1', workload, -1, 1, layer, src_list[1], dst_list[1], count(*)
  FROM hop_rows WHERE hop = 1 GROUP BY ALL
  UNION ALL
  SELECT 'prev', workload, -1, 0, layer, src, dst, count(*)
  FROM (SELECT workload, layer, src, unnest(dst_list) AS dst
        FROM (SELECT workload, layer, unnest(src_list) AS src, dst_list FROM prev_rows))
  GROUP BY ALL
  UNION ALL
  SELECT 'case_cur', workload, token, hop, layer, unnest(range(len(cur))), unnest(cur), 1
  FROM case_keys
  UNION ALL
  SELECT 'case_truth', c.workload, c.token, c.hop, c.layer,
         unnest(range(len(b.experts))), unnest(b.experts), 1
  FROM case_keys c
  JOIN trace b ON b.file = c.file AND b.token = c.token AND b.layer = c.layer + c.hop
  UNION ALL
  SELECT 'case_prev', c.workload, c.token, c.hop, c.layer,
         unnest(range(len(p.experts))), unnest(p.experts), 1
  FROM case_keys c
  JOIN trace p ON p.file = c.file AND p.token = c.token - 1 AND p.seq = c.seq
              AND p.layer = c.layer + c.hop
)
ORDER BY workload, kind, hop, "window", layer, src, dst;
