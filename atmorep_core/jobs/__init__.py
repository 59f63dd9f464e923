"""Jobs: a request, the products it makes and their manifest, under the output folder's lock."""
