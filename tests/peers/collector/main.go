// Program otelcol-weir is a small OpenTelemetry Collector distribution, the
// reference peer of weir's interop tests and benchmark. It is written by hand
// in the shape that the Collector's builder (ocb, go.opentelemetry.io/collector/cmd/builder
// v0.161.0) generates: otelcol.NewCommand with a factories function.
//
// Every Collector module is pinned at one release: core v0.161.0 (its stable
// modules at v1.67.0) and contrib v0.161.0. Build it with tests/peers/build.sh.
//
// Profiles are an alpha signal behind a feature gate: start the binary with
// --feature-gates=service.profilesSupport to use a `profiles` pipeline.
package main

import (
	"os"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/kafkaexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/loadbalancingexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/filterprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/redactionprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/kafkareceiver"
)

// Version of this distribution: the Collector release it is built from.
const version = "0.161.0-weir"

const (
	core    = "go.opentelemetry.io/collector"
	contrib = "github.com/open-telemetry/opentelemetry-collector-contrib"
	beta    = " v0.161.0"
	stable  = " v1.67.0"
)

func main() {
	info := component.BuildInfo{
		Command:     "otelcol-weir",
		Description: "OpenTelemetry Collector, weir's reference peer",
		Version:     version,
	}

	set := otelcol.CollectorSettings{
		BuildInfo: info,
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
			},
		},
		ProviderModules: map[string]string{
			envprovider.NewFactory().Create(confmap.ProviderSettings{}).Scheme():  core + "/confmap/provider/envprovider" + stable,
			fileprovider.NewFactory().Create(confmap.ProviderSettings{}).Scheme(): core + "/confmap/provider/fileprovider" + stable,
			yamlprovider.NewFactory().Create(confmap.ProviderSettings{}).Scheme(): core + "/confmap/provider/yamlprovider" + stable,
		},
	}

	if err := otelcol.NewCommand(set).Execute(); err != nil {
		// cobra has already printed the error.
		os.Exit(1)
	}
}

type aliasProvider interface{ DeprecatedAlias() component.Type }

func makeModulesMap[T component.Factory](factories map[component.Type]T, modules map[component.Type]string) map[component.Type]string {
	for compType, factory := range factories {
		if ap, ok := any(factory).(aliasProvider); ok {
			if alias := ap.DeprecatedAlias(); alias.String() != "" {
				modules[alias] = modules[compType]
			}
		}
	}
	return modules
}

func components() (otelcol.Factories, error) {
	var err error
	factories := otelcol.Factories{
		Telemetry: otelconftelemetry.NewFactory(),
	}

	factories.Extensions, err = otelcol.MakeFactoryMap[extension.Factory]()
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ExtensionModules = map[component.Type]string{}

	factories.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](
		otlpreceiver.NewFactory(),
		kafkareceiver.NewFactory(),
	)
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ReceiverModules = makeModulesMap(factories.Receivers, map[component.Type]string{
		otlpreceiver.NewFactory().Type():  core + "/receiver/otlpreceiver" + beta,
		kafkareceiver.NewFactory().Type(): contrib + "/receiver/kafkareceiver" + beta,
	})

	factories.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](
		otlpexporter.NewFactory(),
		otlphttpexporter.NewFactory(),
		debugexporter.NewFactory(),
		fileexporter.NewFactory(),
		kafkaexporter.NewFactory(),
		loadbalancingexporter.NewFactory(),
	)
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ExporterModules = makeModulesMap(factories.Exporters, map[component.Type]string{
		otlpexporter.NewFactory().Type():          core + "/exporter/otlpexporter" + beta,
		otlphttpexporter.NewFactory().Type():      core + "/exporter/otlphttpexporter" + beta,
		debugexporter.NewFactory().Type():         core + "/exporter/debugexporter" + beta,
		fileexporter.NewFactory().Type():          contrib + "/exporter/fileexporter" + beta,
		kafkaexporter.NewFactory().Type():         contrib + "/exporter/kafkaexporter" + beta,
		loadbalancingexporter.NewFactory().Type(): contrib + "/exporter/loadbalancingexporter" + beta,
	})

	factories.Processors, err = otelcol.MakeFactoryMap[processor.Factory](
		batchprocessor.NewFactory(),
		memorylimiterprocessor.NewFactory(),
		redactionprocessor.NewFactory(),
		transformprocessor.NewFactory(),
		filterprocessor.NewFactory(),
	)
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ProcessorModules = makeModulesMap(factories.Processors, map[component.Type]string{
		batchprocessor.NewFactory().Type():         core + "/processor/batchprocessor" + beta,
		memorylimiterprocessor.NewFactory().Type(): core + "/processor/memorylimiterprocessor" + beta,
		redactionprocessor.NewFactory().Type():     contrib + "/processor/redactionprocessor" + beta,
		transformprocessor.NewFactory().Type():     contrib + "/processor/transformprocessor" + beta,
		filterprocessor.NewFactory().Type():        contrib + "/processor/filterprocessor" + beta,
	})

	factories.Connectors, err = otelcol.MakeFactoryMap[connector.Factory]()
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ConnectorModules = map[component.Type]string{}

	return factories, nil
}
