// tickerd.js, the page's client logic, comes with the watchlist page in a later commit.
