using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace HalfMsgBroker.Client.Tests;

/// <summary>Options bound from configuration, validated when the host starts, and the services they register.</summary>
public sealed class OptionsTests
{
    private static IConfiguration Configuration(Dictionary<string, string?> values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values).Build();

    private static HostApplicationBuilder Host() =>
        Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });

    [Fact]
    public async Task Client_producer_and_pull_consumer_options_bind_from_configuration_and_their_services_resolve()
    {
        var configuration = Configuration(new()
        {
            ["HalfMsg:BaseAddress"] = "http://127.0.0.1:9/",
            ["HalfMsg:ApiKey"] = "hmb-key",
            ["HalfMsg:SigningSecrets:0"] = "s1",
            ["HalfMsg:SigningSecrets:1"] = "s2",
            ["HalfMsg:AttemptTimeout"] = "00:01:00",
            ["HalfMsg:TotalTimeout"] = "00:03:00",
            ["HalfMsg:MaxRetryAttempts"] = "5",
            ["HalfMsg:PublicBaseAddress"] = "http://orders:8080",
            ["HalfMsg:UseHttp2"] = "true",
            ["HalfMsg:Producer:ProducerGroup"] = "order-service",
            ["HalfMsg:Producer:CheckTimeout"] = "00:00:02",
            ["HalfMsg:Producer:CheckPath"] = "/halfmsg/check",
            ["HalfMsg:Consumers:Notifications:ConsumerGroup"] = "notifications",
            ["HalfMsg:Consumers:Notifications:Topic"] = "orders",
            ["HalfMsg:Consumers:Notifications:MaxConcurrency"] = "2",
            ["HalfMsg:Consumers:Notifications:InvisibleFor"] = "00:01:00",
            ["HalfMsg:Consumers:Notifications:WaitTime"] = "00:00:05",
            ["HalfMsg:Consumers:Notifications:RetryAfter"] = "00:00:10",
            ["HalfMsg:Consumers:Notifications:TagFilter"] = "created",
            ["HalfMsg:Consumers:Notifications:MaxAttempts"] = "3",
            ["HalfMsg:Consumers:Notifications:OnExhausted"] = "Discard",
            ["HalfMsg:Consumers:Notifications:EnsureSubscription"] = "false",
        });
        var host = Host();
        host.Services.AddHalfMsgClient(configuration.GetSection("HalfMsg"))
            .AddTransactionalProducer(configuration.GetSection("HalfMsg:Producer"))
            .AddPullConsumer<Order, CountingHandler>(configuration.GetSection("HalfMsg:Consumers:Notifications"));
        using var app = host.Build();

        var client = app.Services.GetRequiredService<IOptions<HalfMsgClientOptions>>().Value;
        Assert.Equal(new Uri("http://127.0.0.1:9/"), client.BaseAddress);
        Assert.Equal("hmb-key", client.ApiKey);
        Assert.Equal(["s1", "s2"], client.SigningSecrets);
        Assert.Equal((TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(3), 5), (client.AttemptTimeout, client.TotalTimeout, client.MaxRetryAttempts));
        Assert.Equal(new Uri("http://orders:8080"), client.PublicBaseAddress);
        Assert.True(client.UseHttp2);

        var producer = app.Services.GetRequiredService<IOptionsMonitor<TransactionalProducerOptions>>().Get("order-service");
        Assert.Equal(("order-service", TimeSpan.FromSeconds(2), "/halfmsg/check"), (producer.ProducerGroup, producer.CheckTimeout, producer.CheckPath));

        var pull = app.Services.GetRequiredService<IOptionsMonitor<PullConsumerOptions>>().Get("HalfMsg:Consumers:Notifications");
        Assert.Equal(("notifications", "orders", 2), (pull.ConsumerGroup, pull.Topic, pull.MaxConcurrency));
        Assert.Equal((TimeSpan.FromMinutes(1), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10)), (pull.InvisibleFor, pull.WaitTime, pull.RetryAfter));
        Assert.Equal(("created", 3, ExhaustedAction.Discard, false), (pull.TagFilter, pull.MaxAttempts, pull.OnExhausted, pull.EnsureSubscription));

        // The interfaces resolve, to the same singletons as the concrete types.
        Assert.Same(app.Services.GetRequiredService<HalfMsgClient>(), app.Services.GetRequiredService<IHalfMsgClient>());
        var transactional = app.Services.GetRequiredService<ITransactionalProducer>();
        Assert.Equal("order-service", transactional.ProducerGroup);
        Assert.Same(app.Services.GetRequiredService<TransactionalProducer>(), transactional);
        Assert.Same(transactional, app.Services.GetRequiredKeyedService<ITransactionalProducer>("order-service"));

        // Valid: the host starts (the consumer does not subscribe, and its receives fail quietly against port 9).
        await app.StartAsync();
        await app.StopAsync();
    }

    [Fact]
    public async Task Second_producer_group_is_a_keyed_service()
    {
        var host = Host();
        host.Services.AddHalfMsgClient(o => o.BaseAddress = new Uri("http://127.0.0.1:9"))
            .AddTransactionalProducer("first", new Uri("http://127.0.0.1:9/check"))
            .AddTransactionalProducer("second", new Uri("http://127.0.0.1:9/check"));
        using var app = host.Build();
        Assert.Equal("first", app.Services.GetRequiredService<ITransactionalProducer>().ProducerGroup);
        Assert.Equal("second", app.Services.GetRequiredKeyedService<ITransactionalProducer>("second").ProducerGroup);
        await Task.CompletedTask;
    }

    [Fact]
    public async Task Client_options_are_validated_at_start_with_messages_that_name_the_setting()
    {
        var host = Host();
        host.Services.AddHalfMsgClient(Configuration(new()
        {
            ["HalfMsg:AttemptTimeout"] = "00:00:10",
            ["HalfMsg:PublicBaseAddress"] = "ftp://orders",
        }).GetSection("HalfMsg"));
        using var app = host.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains(ex.Failures, f => f.Contains("BaseAddress (HalfMsg:BaseAddress) is required", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("AttemptTimeout must exceed the longest long poll", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("PublicBaseAddress (HalfMsg:PublicBaseAddress) must be an absolute http:// or https:// URL", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Pull_consumer_options_outside_the_brokers_limits_stop_the_start()
    {
        var host = Host();
        host.Services.AddHalfMsgClient(o => o.BaseAddress = new Uri("http://127.0.0.1:9"))
            .AddPullConsumer<Order, CountingHandler>("g", "t", o =>
            {
                o.WaitTime = TimeSpan.FromSeconds(31);
                o.InvisibleFor = TimeSpan.FromHours(13);
                o.RetryAfter = TimeSpan.FromSeconds(43_201);
                o.MaxConcurrency = 0;
                o.MaxAttempts = 1001;
            });
        using var app = host.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains(ex.Failures, f => f.Contains("Pull consumer 'g/t': WaitTime must be between 0 and 30 s", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("InvisibleFor must be between 1 s and 12 h", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("RetryAfter must be between 0 and 12 h", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("MaxConcurrency must be between 1 and 1000", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("MaxAttempts must be between 1 and 1000", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Pull_consumer_bound_without_group_or_topic_stops_the_start()
    {
        var host = Host();
        host.Services.AddHalfMsgClient(o => o.BaseAddress = new Uri("http://127.0.0.1:9"))
            .AddPullConsumer<Order, CountingHandler>(Configuration(new() { ["Consumer:MaxConcurrency"] = "2" }).GetSection("Consumer"));
        using var app = host.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains(ex.Failures, f => f.Contains("Pull consumer 'Consumer': ConsumerGroup is required", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("Pull consumer 'Consumer': Topic is required", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Producer_check_timeout_outside_the_brokers_limits_stops_the_start()
    {
        var host = Host();
        host.Services.AddHalfMsgClient(o => o.BaseAddress = new Uri("http://127.0.0.1:9"))
            .AddTransactionalProducer("orders", TimeSpan.FromSeconds(61));
        using var app = host.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains(ex.Failures, f => f.Contains("Transactional producer 'orders': CheckTimeout must be between 100 ms and 60 s", StringComparison.Ordinal));
    }

    [Fact]
    public void Producer_bound_from_configuration_without_a_group_fails_at_registration()
    {
        var services = new ServiceCollection();
        var builder = services.AddHalfMsgClient(o => o.BaseAddress = new Uri("http://127.0.0.1:9"));
        var ex = Assert.Throws<InvalidOperationException>(() => builder.AddTransactionalProducer(Configuration(new() { ["HalfMsg:Producer:CheckTimeout"] = "00:00:02" }).GetSection("HalfMsg:Producer")));
        Assert.Contains("HalfMsg:Producer:ProducerGroup is required", ex.Message, StringComparison.Ordinal);
    }

    private sealed class CountingHandler : IHalfMsgHandler<Order>
    {
        public Task HandleAsync(HalfMsgDelivery<Order> delivery, CancellationToken cancellationToken = default) => Task.CompletedTask;
    }
}
