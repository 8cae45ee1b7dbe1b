<?php
// A ~100 KiB HTML page (bench/h2.sh): a product table whose numbers vary
// from row to row, so it compresses about as well as real markup does
// (gzip level 5: ~6x). Deterministic: the same bytes on every request, so
// the harness can check them, and bench/h2.sh writes the same output to
// static/page.html for the static-file endpoint.
$statuses = ['in stock', 'low stock', 'backordered', 'discontinued', 'preorder'];
$rows = 692;

echo "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
    "<title>Catalogue</title>\n</head>\n<body>\n<h1>Catalogue</h1>\n",
    "<table class=\"catalogue\">\n<thead><tr><th>#</th><th>Product</th><th>SKU</th>",
    "<th>Price</th><th>Quantity</th><th>Status</th></tr></thead>\n<tbody>\n";
for ($i = 1; $i <= $rows; $i++) {
    $sku = ($i * 7919) % 100003;
    $cents = 199 + ($i * 3571) % 99800;
    $qty = ($i * 613) % 1000;
    printf(
        "<tr class=\"%s\"><td>%d</td><td><a href=\"/products/%d\">Product %d</a></td><td>SKU-%05d</td>"
            . "<td>%s</td><td>%d</td><td>%s</td></tr>\n",
        $i % 2 ? 'odd' : 'even', $i, $sku, $i, $sku,
        number_format($cents / 100, 2), $qty, $statuses[$sku % count($statuses)]
    );
}
echo "</tbody>\n</table>\n</body>\n</html>\n";
