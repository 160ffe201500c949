from odoo_dr.cli.app import main

main()
