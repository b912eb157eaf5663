-- pgbench script: the checkout transaction as order-service first ran it, to
-- measure PostgreSQL's ceiling for checkouts on this machine.
--
--   pgbench -n -M prepared -c 8 -j 2 -T 20 -f bench/checkout.sql <database with order-service's schema>
--
-- Statements as the first version of order-service's POST /orders sent them
-- (checkout_single.sql is the one statement it sends now): the catalog read
-- (outside the transaction), then BEGIN, the order row, its lines in one statement
-- (two lines here), the outbox row, COMMIT. The catalog read also draws the
-- ids, so there is no extra round trip. Needs -M prepared (or extended): the
-- ids are sent as parameters.
SELECT gen_random_uuid() AS order_id, gen_random_uuid() AS event_id, count(*) AS products
  FROM products WHERE id = ANY('{1,2}'::bigint[]) \gset
\set user_id random(1, 1000000)
BEGIN;
INSERT INTO orders (id, user_id, user_email, status, total_amount, currency, processing_duration_ms, created_at, updated_at)
  VALUES (:order_id, :user_id, 'bench@example.com', 'pending', 1349.98, 'USD', 0.2, now(), now());
INSERT INTO order_items (order_id, line_no, product_id, name, unit_price, quantity, line_total)
  SELECT :order_id, * FROM unnest('{1,2}'::int[], '{1,2}'::bigint[], '{Gaming Laptop,Wireless Mouse}'::text[],
                                  '{1299.99,49.99}'::numeric[], '{1,1}'::int[], '{1299.99,49.99}'::numeric[]);
INSERT INTO outbox (id, routing_key, event_type, correlation_id, payload)
  VALUES (:event_id, 'order.order.created', 'order.created', :order_id,
          '{"event_type":"order.created","event_id":"00000000-0000-0000-0000-000000000000","timestamp":"2026-01-01T00:00:00.000000Z","schema_version":1,"order_id":"00000000-0000-0000-0000-000000000000","user_id":1,"user_email":"bench@example.com","total_amount":"1349.98","currency":"USD","items":[{"product_id":1,"name":"Gaming Laptop","quantity":1,"price":"1299.99"},{"product_id":2,"name":"Wireless Mouse","quantity":1,"price":"49.99"}]}');
COMMIT;
