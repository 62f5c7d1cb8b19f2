import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Customer score rows belong to a row set that a refresh swaps into its snapshot when done.

    The rows are derived data: existing ones are dropped and the next refresh writes them again.
    Customer predictions get their own row set, which a refresh that reuses the predictive block
    keeps.
    """

    dependencies = [
        ("analytics", "0004_customer_predictions"),
        ("shops", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL("DELETE FROM analytics_customerscore", reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL("DELETE FROM analytics_customerprediction", reverse_sql=migrations.RunSQL.noop),
        migrations.CreateModel(
            name="CustomerRows",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("shop", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                           to="shops.shop")),
            ],
        ),
        migrations.RemoveIndex(model_name="customerscore", name="score_snapshot_customer"),
        migrations.RemoveField(model_name="customerscore", name="snapshot"),
        migrations.AddField(
            model_name="customerscore",
            name="rows",
            field=models.ForeignKey(db_constraint=False, db_index=False, default=0,
                                    on_delete=django.db.models.deletion.CASCADE, related_name="scores",
                                    to="analytics.customerrows"),
            preserve_default=False,
        ),
        migrations.AddIndex(
            model_name="customerscore",
            index=models.Index(fields=["rows", "customer_shopify_id"], name="score_rows_customer"),
        ),
        migrations.RemoveIndex(model_name="customerprediction", name="prediction_snapshot_customer"),
        migrations.RemoveField(model_name="customerprediction", name="snapshot"),
        migrations.AddField(
            model_name="customerprediction",
            name="rows",
            field=models.ForeignKey(db_constraint=False, db_index=False, default=0,
                                    on_delete=django.db.models.deletion.CASCADE, related_name="predictions",
                                    to="analytics.customerrows"),
            preserve_default=False,
        ),
        migrations.AddIndex(
            model_name="customerprediction",
            index=models.Index(fields=["rows", "customer_shopify_id"], name="prediction_rows_customer"),
        ),
        migrations.AddField(
            model_name="analyticssnapshot",
            name="predictions",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="+", to="analytics.customerrows"),
        ),
        migrations.RemoveField(model_name="analyticssnapshot", name="has_customers"),
        migrations.AddField(
            model_name="analyticssnapshot",
            name="rows",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="+", to="analytics.customerrows"),
        ),
    ]
