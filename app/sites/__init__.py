"""The inventory: administrative levels, sites, endpoints, bridges, managed hosts, links, maintenance."""
