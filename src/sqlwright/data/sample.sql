-- sqlwright's sample database: a small outdoor-gear shop (customers, staff, products, orders).
-- Built by `sqlwright sample` (and by `./sqlwright.sh ask` on first use) into the cache directory.
-- Deterministic: the order lines are generated with integer arithmetic, no randomness.

PRAGMA foreign_keys = ON;

CREATE TABLE departments (
  department_id INTEGER PRIMARY KEY,
  name          TEXT NOT NULL UNIQUE,
  city          TEXT NOT NULL
);

CREATE TABLE employees (
  employee_id   INTEGER PRIMARY KEY,
  first_name    TEXT NOT NULL,
  last_name     TEXT NOT NULL,
  title         TEXT NOT NULL,
  department_id INTEGER NOT NULL REFERENCES departments(department_id),
  manager_id    INTEGER REFERENCES employees(employee_id),
  hire_date     TEXT NOT NULL,          -- ISO date
  salary        REAL NOT NULL           -- yearly, in EUR
);

CREATE TABLE customers (
  customer_id   INTEGER PRIMARY KEY,
  name          TEXT NOT NULL,
  email         TEXT NOT NULL UNIQUE,
  city          TEXT NOT NULL,
  country       TEXT NOT NULL,
  signup_date   TEXT NOT NULL,
  loyalty_tier  TEXT NOT NULL CHECK (loyalty_tier IN ('bronze', 'silver', 'gold'))
);

CREATE TABLE categories (
  category_id   INTEGER PRIMARY KEY,
  name          TEXT NOT NULL UNIQUE
);

CREATE TABLE products (
  product_id    INTEGER PRIMARY KEY,
  name          TEXT NOT NULL,
  category_id   INTEGER NOT NULL REFERENCES categories(category_id),
  unit_price    REAL NOT NULL,          -- EUR
  in_stock      INTEGER NOT NULL,       -- units on hand
  discontinued  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE orders (
  order_id      INTEGER PRIMARY KEY,
  customer_id   INTEGER NOT NULL REFERENCES customers(customer_id),
  employee_id   INTEGER NOT NULL REFERENCES employees(employee_id),  -- the salesperson
  order_date    TEXT NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('pending', 'shipped', 'delivered', 'cancelled'))
);

CREATE TABLE order_items (
  order_id      INTEGER NOT NULL REFERENCES orders(order_id),
  product_id    INTEGER NOT NULL REFERENCES products(product_id),
  quantity      INTEGER NOT NULL,
  unit_price    REAL NOT NULL,          -- price charged, EUR
  PRIMARY KEY (order_id, product_id)
);

INSERT INTO departments VALUES
  (1, 'Sales', 'Lyon'), (2, 'Customer Service', 'Lyon'), (3, 'Warehouse', 'Grenoble'),
  (4, 'Marketing', 'Paris'), (5, 'Management', 'Paris');

INSERT INTO employees VALUES
  (1, 'Claire', 'Dubois', 'Managing Director', 5, NULL, '2015-03-02', 98000),
  (2, 'Marc', 'Lefèvre', 'Head of Sales', 1, 1, '2016-06-13', 72000),
  (3, 'Inès', 'Haddad', 'Sales Representative', 1, 2, '2019-01-07', 46000),
  (4, 'Tom', 'Becker', 'Sales Representative', 1, 2, '2020-09-21', 44000),
  (5, 'Lucía', 'Ortega', 'Sales Representative', 1, 2, '2022-02-14', 41500),
  (6, 'Yann', 'Le Goff', 'Support Lead', 2, 1, '2017-11-06', 52000),
  (7, 'Amira', 'Benali', 'Support Agent', 2, 6, '2021-04-19', 36000),
  (8, 'Piotr', 'Nowak', 'Warehouse Manager', 3, 1, '2016-02-01', 50000),
  (9, 'Sofia', 'Rossi', 'Picker', 3, 8, '2023-05-02', 31000),
  (10, 'Jonas', 'Weber', 'Picker', 3, 8, '2024-03-11', 30500),
  (11, 'Chloé', 'Martin', 'Marketing Manager', 4, 1, '2018-08-27', 61000),
  (12, 'Ravi', 'Patel', 'Content Writer', 4, 11, '2022-10-03', 39000);

INSERT INTO customers VALUES
  (1, 'Alpine Club Chamonix', 'contact@alpineclub.fr', 'Chamonix', 'France', '2021-01-15', 'gold'),
  (2, 'Hannah Schmidt', 'hannah.schmidt@example.de', 'Munich', 'Germany', '2021-03-02', 'silver'),
  (3, 'Luca Bianchi', 'luca.bianchi@example.it', 'Turin', 'Italy', '2021-05-20', 'bronze'),
  (4, 'Émilie Laurent', 'emilie.laurent@example.fr', 'Lyon', 'France', '2021-07-08', 'gold'),
  (5, 'Noah Jensen', 'noah.jensen@example.dk', 'Copenhagen', 'Denmark', '2021-09-30', 'bronze'),
  (6, 'Trail Runners Geneva', 'hello@trailgeneva.ch', 'Geneva', 'Switzerland', '2022-01-11', 'silver'),
  (7, 'Marta Kowalska', 'marta.k@example.pl', 'Kraków', 'Poland', '2022-02-25', 'bronze'),
  (8, 'Olivier Girard', 'o.girard@example.fr', 'Grenoble', 'France', '2022-04-17', 'silver'),
  (9, 'Sara Lindqvist', 'sara.lindqvist@example.se', 'Stockholm', 'Sweden', '2022-06-05', 'gold'),
  (10, 'Côte d''Ivoire Explorers', 'info@ci-explorers.ci', 'Abidjan', 'Côte d''Ivoire', '2022-08-19', 'bronze'),
  (11, 'Pablo Fernández', 'pablo.f@example.es', 'Barcelona', 'Spain', '2022-11-23', 'silver'),
  (12, 'Greta Huber', 'greta.huber@example.at', 'Innsbruck', 'Austria', '2023-01-09', 'gold'),
  (13, 'James O''Connor', 'james.oconnor@example.ie', 'Dublin', 'Ireland', '2023-03-14', 'bronze'),
  (14, 'Lena Vogel', 'lena.vogel@example.de', 'Berlin', 'Germany', '2023-05-28', 'bronze'),
  (15, 'Pyrenees Guides', 'team@pyrenees-guides.fr', 'Toulouse', 'France', '2023-08-02', 'silver'),
  (16, 'Anna Novak', 'anna.novak@example.si', 'Ljubljana', 'Slovenia', '2023-10-16', 'bronze'),
  (17, 'Mateo Silva', 'mateo.silva@example.pt', 'Porto', 'Portugal', '2024-01-22', 'bronze'),
  (18, 'Eva Horváth', 'eva.horvath@example.hu', 'Budapest', 'Hungary', '2024-04-03', 'silver'),
  (19, 'Nordic Ski School', 'office@nordicski.no', 'Oslo', 'Norway', '2024-06-12', 'gold'),
  (20, 'Julien Moreau', 'julien.moreau@example.fr', 'Annecy', 'France', '2024-09-01', 'bronze');

INSERT INTO categories VALUES
  (1, 'Tents'), (2, 'Backpacks'), (3, 'Footwear'), (4, 'Clothing'), (5, 'Climbing'), (6, 'Camp Kitchen');

INSERT INTO products VALUES
  (1, 'Summit 2 Tent', 1, 349.00, 14, 0),
  (2, 'Basecamp 4 Tent', 1, 529.00, 6, 0),
  (3, 'Ultralight Solo Tarp', 1, 119.50, 22, 0),
  (4, 'Trekker 45L Backpack', 2, 159.90, 31, 0),
  (5, 'Daypack 22L', 2, 69.90, 48, 0),
  (6, 'Expedition 70L Backpack', 2, 289.00, 9, 0),
  (7, 'Ridge Hiking Boots', 3, 189.00, 27, 0),
  (8, 'Trail Runner Shoes', 3, 129.00, 40, 0),
  (9, 'Approach Shoes', 3, 149.00, 0, 1),
  (10, 'Merino Base Layer', 4, 79.00, 55, 0),
  (11, 'Storm Shell Jacket', 4, 299.00, 18, 0),
  (12, 'Down Vest', 4, 139.00, 0, 0),
  (13, 'Softshell Trousers', 4, 109.00, 33, 0),
  (14, 'Dynamic Rope 60m', 5, 219.00, 12, 0),
  (15, 'Climbing Harness', 5, 74.90, 25, 0),
  (16, 'Quickdraw Set (6)', 5, 89.00, 30, 0),
  (17, 'Chalk Bag', 5, 19.90, 64, 0),
  (18, 'Titanium Stove', 6, 59.00, 37, 0),
  (19, 'Cookset 2P', 6, 44.50, 29, 0),
  (20, 'Insulated Bottle 1L', 6, 34.90, 0, 1);

-- 60 orders spread over 2023-2024, customers, salespeople (employees 2-5) and statuses.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
INSERT INTO orders (order_id, customer_id, employee_id, order_date, status)
SELECT i,
       1 + (i * 7) % 20,
       2 + (i * 3) % 4,
       date('2023-01-03', '+' || (i * 12 + i % 5) || ' days'),
       CASE WHEN i % 13 = 0 THEN 'cancelled'
            WHEN i > 57 THEN 'pending'
            WHEN i > 52 THEN 'shipped'
            ELSE 'delivered' END
FROM n;

-- 1 to 3 lines per order; the price charged is the list price, with 10% off for gold customers.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60),
     line(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM line WHERE k < 2)
INSERT INTO order_items (order_id, product_id, quantity, unit_price)
SELECT o.order_id,
       p.product_id,
       1 + (o.order_id + line.k) % 3,
       round(p.unit_price * CASE WHEN c.loyalty_tier = 'gold' THEN 0.9 ELSE 1.0 END, 2)
FROM n
JOIN orders o ON o.order_id = n.i
JOIN customers c ON c.customer_id = o.customer_id
JOIN line ON line.k <= (n.i % 3)
JOIN products p ON p.product_id = 1 + (n.i * 5 + line.k * 7) % 20;
