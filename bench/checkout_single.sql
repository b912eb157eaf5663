-- pgbench script: the checkout as one statement (order row, its lines and the
-- outbox row in data-modifying CTEs; a single statement is a transaction of
-- its own, so no BEGIN/COMMIT round trips), with the catalog served from
-- memory. Compare with checkout.sql (the six round trips of the first
-- version) to see what the round trips cost PostgreSQL:
--
--   pgbench -n -M prepared -c 8 -j 2 -T 20 -f bench/checkout_single.sql <database with order-service's schema>
\set user_id random(1, 1000000)
WITH new_order AS (
  INSERT INTO orders (id, user_id, user_email, status, total_amount, currency, processing_duration_ms, created_at, updated_at)
  VALUES (gen_random_uuid(), :user_id, 'bench@example.com', 'pending', 1349.98, 'USD', 0.2, now(), now())
  RETURNING id
), lines AS (
  INSERT INTO order_items (order_id, line_no, product_id, name, unit_price, quantity, line_total)
  SELECT new_order.id, l.* FROM new_order, unnest('{1,2}'::int[], '{1,2}'::bigint[], '{Gaming Laptop,Wireless Mouse}'::text[],
                                  '{1299.99,49.99}'::numeric[], '{1,1}'::int[], '{1299.99,49.99}'::numeric[]) AS l
)
INSERT INTO outbox (id, routing_key, event_type, correlation_id, payload)
  SELECT gen_random_uuid(), 'order.order.created', 'order.created', new_order.id,
          '{"event_type":"order.created","event_id":"00000000-0000-0000-0000-000000000000","timestamp":"2026-01-01T00:00:00.000000Z","schema_version":1,"order_id":"00000000-0000-0000-0000-000000000000","user_id":1,"user_email":"bench@example.com","total_amount":"1349.98","currency":"USD","items":[{"product_id":1,"name":"Gaming Laptop","quantity":1,"price":"1299.99"},{"product_id":2,"name":"Wireless Mouse","quantity":1,"price":"49.99"}]}'
  FROM new_order;
