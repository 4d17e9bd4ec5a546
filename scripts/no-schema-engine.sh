#!/bin/sh
# Stands in for Prisma's schema-engine binary where it could not be downloaded.
echo "Prisma's schema engine is not installed on this machine; apply migrations with 'npm run db:deploy'" >&2
exit 1
